"""Writes of the demo market: `simulate_market` records what it simulates, so that every page can say so (the
dashboard's demo banner reads it through predictions.selectors.simulated_market)."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from django.db import transaction

from pumpserver.models import RuntimeSetting

SIMULATED_MARKET_KEY = "simulated_market"


def record_simulated_market(
    *, coins: int, seed: int, realtime: bool, started_at: datetime, finished_at: datetime | None = None,
    rows: int | None = None,
) -> None:
    """Store the simulation that writes (or wrote) coin_metrics: started with `finished_at` None, finished with the
    end time and the rows written. The newest run wins: one record per database."""
    value = {
        "coins": coins,
        "seed": seed,
        "realtime": realtime,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat() if finished_at else None,
        "rows": rows,
        "process": f"{socket.gethostname()}:{os.getpid()}",
    }
    with transaction.atomic():
        RuntimeSetting.objects.update_or_create(key=SIMULATED_MARKET_KEY, defaults={"value": value})
