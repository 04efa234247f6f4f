"""python manage.py train_model [--model-type xgboost|random_forest] [--future-minutes N] [--min-percent-change P]
[--direction up|down] [--features a,b,…] [--windows 5,10,15] [--phases 1,2] [--since ISO] [--until ISO] [--name NAME]
[--activate] [--n-estimators N] [--max-depth N] [--seed N] [--max-rows N] [--test-fraction F] [--min-rows N]

Trains a time-based classifier on this database's coin_metrics with the serving feature code and registers it
(see modelregistry/training/ for the labels, the split and what differs from the original training service).
"""

from __future__ import annotations

from datetime import datetime, timezone

from django.core.management.base import BaseCommand, CommandError

from modelregistry.models import ModelType, TargetDirection
from modelregistry.services import RegistrationError
from modelregistry.training import (
    DEFAULT_WINDOWS,
    TrainingConfig,
    TrainingConfigError,
    TrainingDataError,
    train,
)


def _int_list(option: str):
    def parse(value: str) -> list[int]:
        try:
            return [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise CommandError(f"--{option} must be a comma-separated list of whole numbers, not {value!r}") from None

    return parse


def _moment(option: str):
    def parse(value: str) -> datetime:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError(f"--{option} must be an ISO 8601 time such as 2025-01-01T00:00:00Z, not {value!r}") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    return parse


class Command(BaseCommand):
    help = (
        "Train an XGBoost or random-forest classifier on coin_metrics (time-based target: price_close moves by "
        "--min-percent-change within --future-minutes) with the serving feature code, test it on the newest part "
        "of the data and register it (source builtin)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model-type", default=ModelType.XGBOOST, help="xgboost (default) or random_forest")
        parser.add_argument("--future-minutes", type=int, default=5, help="horizon of the target (default 5)")
        parser.add_argument("--min-percent-change", type=float, default=5.0, help="required move in %% (default 5)")
        parser.add_argument("--direction", default=TargetDirection.UP, help="up (default) or down")
        parser.add_argument(
            "--features",
            help="comma-separated input names (default: 20 base columns, 7 ATH features and the engineered set "
            "for --windows)",
        )
        parser.add_argument(
            "--windows", default=",".join(map(str, DEFAULT_WINDOWS)), help="feature windows in rows (default 5,10,15)"
        )
        parser.add_argument("--phases", help="only these phase ids, comma-separated (default: all)")
        parser.add_argument("--since", help="first row time, ISO 8601 (default: the oldest row)")
        parser.add_argument("--until", help="last row time, ISO 8601 (default: the newest row)")
        parser.add_argument("--name", help="model name (default: describes the target and the date)")
        parser.add_argument("--activate", action="store_true", help="serve the model at once")
        parser.add_argument("--n-estimators", type=int, default=100, help="trees (default 100)")
        parser.add_argument("--max-depth", type=int, help="tree depth (default: XGBoost 6, random forest 10)")
        parser.add_argument("--seed", type=int, default=42, help="random seed of sampling and model (default 42)")
        parser.add_argument(
            "--max-rows", type=int, default=20_000,
            help="at most this many labelled rows (a seeded sample) get feature vectors (default 20000)",
        )
        parser.add_argument(
            "--test-fraction", type=float, default=0.2, help="newest share of the rows used for testing (default 0.2)"
        )
        parser.add_argument("--min-rows", type=int, default=200, help="fewest labelled rows to train on (default 200)")

    def handle(self, *args, **options):
        config = config_from_options(options)
        try:
            result = train(config)
        except (TrainingConfigError, TrainingDataError, RegistrationError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(result.summary())


def config_from_options(options: dict) -> TrainingConfig:
    """TrainingConfig from the command's options (also used by train_demo_model); bad values raise CommandError."""
    features = options.get("features")
    windows = options.get("windows")
    phases = options.get("phases")
    since, until = options.get("since"), options.get("until")
    config = TrainingConfig(
        model_type=options.get("model_type") or ModelType.XGBOOST,
        features=[f.strip() for f in features.split(",") if f.strip()] if features else None,
        windows=_int_list("windows")(windows) if isinstance(windows, str) else list(windows or DEFAULT_WINDOWS),
        future_minutes=options.get("future_minutes", 5),
        min_percent_change=options.get("min_percent_change", 5.0),
        direction=options.get("direction") or TargetDirection.UP,
        phases=_int_list("phases")(phases) if isinstance(phases, str) else phases,
        since=_moment("since")(since) if isinstance(since, str) else since,
        until=_moment("until")(until) if isinstance(until, str) else until,
        name=options.get("name"),
        activate=bool(options.get("activate")),
        n_estimators=options.get("n_estimators", 100),
        max_depth=options.get("max_depth"),
        seed=options.get("seed", 42),
        max_rows=options.get("max_rows", 20_000),
        test_fraction=options.get("test_fraction", 0.2),
        min_rows=options.get("min_rows", 200),
    )
    try:
        return config.validated()
    except TrainingConfigError as exc:
        raise CommandError(str(exc)) from None
