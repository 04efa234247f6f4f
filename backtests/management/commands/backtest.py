"""`python manage.py backtest MODEL_ID --start ISO --end ISO [--threshold X] [--json FILE] [--rows-csv FILE]`"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from backtests import selectors, services
from backtests.models import BacktestRun, RunState


def _moment(value: str, field: str) -> datetime:
    moment = parse_datetime(value.replace("Z", "+00:00")) if value else None
    if moment is None:
        raise CommandError(f"{field}: not an ISO date and time: {value!r} (e.g. 2026-01-01T00:00:00Z)")
    return moment


class Command(BaseCommand):
    help = "Replay a model over the recorded market (coin_metrics) and judge every prediction as the worker would."

    def add_arguments(self, parser):
        parser.add_argument("model_id", type=int, help="registry id (prediction_active_models.id), active or not")
        parser.add_argument("--start", required=True, help="first data time replayed (ISO, with time zone)")
        parser.add_argument("--end", required=True, help="last data time replayed (ISO, with time zone)")
        parser.add_argument("--threshold", type=float, help="alert threshold (default: the model's)")
        parser.add_argument("--json", dest="json_file", help="write the summary as JSON to this file")
        parser.add_argument("--rows-csv", dest="rows_csv", help="write one line per prediction to this CSV file")

    def handle(self, *args, model_id: int, start: str, end: str, threshold, json_file, rows_csv, **options):
        try:
            run = services.create_run(active_model_id=model_id, start=_moment(start, "--start"),
                                      end=_moment(end, "--end"), threshold=threshold, requested_by="command")
        except services.BacktestError as exc:
            field = {"active_model_id": "MODEL_ID", "start": "--start", "end": "--end"}.get(exc.field, f"--{exc.field}")
            raise CommandError(f"{field}: {exc.message}") from None
        self.stdout.write(f"backtest {run.pk}: model {model_id}, {run.start.isoformat()} … {run.end.isoformat()}, "
                          f"threshold {run.threshold:g}")
        run = services.execute_run(run_id=run.pk, progress=self._progress if sys.stdout.isatty() else None)
        if sys.stdout.isatty():
            self.stdout.write("")
        if run.state != RunState.DONE:
            raise CommandError(f"backtest {run.pk} failed: {run.error}")
        self._print_summary(run)
        if json_file:
            with open(json_file, "w") as handle:
                json.dump({"run_id": run.pk, **run.summary}, handle, indent=2)
        if rows_csv:
            with open(rows_csv, "w", newline="") as handle:
                handle.writelines(selectors.rows_csv(run_id=run.pk))

    def _progress(self, run: BacktestRun) -> None:
        width = 30
        filled = int(run.progress * width)
        self.stdout.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {run.progress:6.1%}  "
                          f"{run.rows_done:,}/{run.rows_total:,} rows", ending="")
        self.stdout.flush()

    def _print_summary(self, run: BacktestRun) -> None:
        s = run.summary

        def rate(value) -> str:
            return "–" if value is None else f"{value:.1%}"

        live = s["live"]
        auc = "–" if s["roc_auc"] is None else f"{s['roc_auc']:.3f}"
        lines = [
            f"rows replayed   {s['rows_replayed']:,} in {s['duration_s']:.1f} s ({s['rows_per_s'] or 0:,.0f} rows/s)",
            f"predictions     {s['predictions']:,}; ROC AUC {auc}; target reached in {rate(s['base_rate'])} of "
            "judged predictions",
            f"alerts          {s['alerts']:,} at threshold {s['threshold']:g}: {s['success']:,} success, "
            f"{s['failed']:,} failed, {s['not_applicable']:,} not applicable, {s['pending']:,} not yet judged "
            f"(horizon beyond the data); success rate {rate(s['success_rate'])}",
            "threshold  alerts  success rate  avg change",
            *(f"  {t['threshold']:.2f}   {t['alerts']:>7,}  {rate(t['success_rate']):>12}  "
              f"{'–' if t['avg_price_change_pct'] is None else format(t['avg_price_change_pct'], '+.2f') + ' %':>10}"
              for t in s["thresholds"]),
            f"live            {live['live_predictions']:,} live predictions in the range, {live['reproduced']:,} "
            f"reproduced exactly, {live['differing']:,} differ",
        ]
        self.stdout.write("\n".join(lines))
