"""MCP tools of the backtests: queue a replay of a model over the recorded market, follow it, list a model's runs.

The runs and their summaries have the REST API's shape (web/api/backtests/serializers.py).
"""

from __future__ import annotations

from backtests import selectors, services
from backtests.models import BacktestRun
from pumpserver.scopes import OPERATE
from web.api.backtests.serializers import BacktestRunBriefSerializer, BacktestRunSerializer
from web.mcp.registry import (
    LIMIT,
    OFFSET,
    ToolError,
    active_model_id,
    integer,
    model_or_error,
    number,
    parse_time,
    timestamp,
    tool,
)


def _time(args: dict, key: str):
    moment = parse_time(args, key)
    if moment is None:
        raise ToolError(f"argument '{key}': an ISO-8601 date-time is required (e.g. 2026-01-14T10:00:00Z)")
    return moment


def _run(run_id: int) -> BacktestRun:
    try:
        return selectors.get_run(run_id=run_id)
    except BacktestRun.DoesNotExist:
        raise ToolError(f"backtest {run_id} not found (see list_backtests)") from None


@tool("run_backtest", "Run a backtest",
      "Replay a model (active or not) over market data already recorded in coin_metrics between start and end, as "
      "the listener would have predicted each row, and judge every prediction as the worker judges live ones. The "
      "run is queued for the worker and this answers at once with its id and state; follow it with get_backtest "
      "(state queued → running → done, or failed when crashed or cancelled).",
      {"active_model_id": active_model_id(),
       "start": timestamp("First data time replayed."),
       "end": timestamp("Last data time replayed (inclusive); at most BACKTEST_MAX_RANGE_DAYS after start."),
       "threshold": number("Alert threshold the replayed rows are tagged by (above 0, at most 1); default: the "
                           "model's.", minimum=0, maximum=1)},
      ("active_model_id", "start", "end"), read_only=False, scope=OPERATE)
def run_backtest(args: dict) -> dict:
    model_or_error(args["active_model_id"])
    try:
        run = services.queue_run(active_model_id=args["active_model_id"], start=_time(args, "start"),
                                 end=_time(args, "end"), threshold=args.get("threshold"), requested_by="mcp")
    except services.BacktestError as exc:
        raise ToolError(f"argument '{exc.field}': {exc.message}") from None
    return {"message": f"backtest {run.pk} queued; follow it with get_backtest",
            "backtest": BacktestRunSerializer(run).data}


@tool("get_backtest", "Backtest state and results",
      "One backtest run: state, progress (0..1), rows replayed so far, error, and once done its summary: predictions, "
      "alerts (rows at or above the threshold) with success/failed/not_applicable/pending, success_rate (success / "
      "(success + failed)), ROC AUC, one row per threshold 0.50…0.95, and `live`: how many of the model's live "
      "predictions in the range the replay reproduced exactly, with the reasons of those that differ.",
      {"run_id": integer("Id of the run (from run_backtest or list_backtests).", minimum=1)}, ("run_id",))
def get_backtest(args: dict) -> dict:
    return {"backtest": BacktestRunSerializer(_run(args["run_id"])).data}


@tool("list_backtests", "List a model's backtests",
      "A model's backtest runs, newest first, with state, progress and headline figures (predictions, alerts, "
      "success_rate); get_backtest gives one run's whole summary.",
      {"active_model_id": active_model_id(), "limit": LIMIT, "offset": OFFSET}, ("active_model_id",))
def list_backtests(args: dict) -> dict:
    model_or_error(args["active_model_id"])
    runs = selectors.runs_of_model(active_model_id=args["active_model_id"])
    page = list(runs[args["offset"]:args["offset"] + args["limit"]])
    return {"backtests": BacktestRunBriefSerializer(page, many=True).data, "total": runs.count(),
            "limit": args["limit"], "offset": args["offset"]}
