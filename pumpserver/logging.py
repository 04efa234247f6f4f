"""JSON log lines for LOG_FORMAT=json (one object per record, for log shippers)."""

import json
import logging


class JsonFormatter(logging.Formatter):
    def __init__(self, *args, indent: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.indent = indent

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, indent=self.indent, default=str)
