"""django-q2 task: the worker runs queued backtests."""

from backtests import services


def run_backtest(run_id: int) -> str:
    run = services.execute_run(run_id=run_id)
    return f"backtest {run.pk}: {run.state}{' (' + run.error + ')' if run.error else ''}"
