"""ATH tracking of pending predictions (spec §2.5, weakness 8) as prices arrive."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from alerts.services import track_ath
from predictions.models import ModelPrediction
from tests.test_evaluation import T0, predict, price, time_model

pytestmark = pytest.mark.django_db


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def figures(row: ModelPrediction):
    row.refresh_from_db()
    return row.ath_highest_pct, row.ath_highest_timestamp, row.ath_lowest_pct, row.ath_lowest_timestamp


def test_figures_move_outward_as_prices_arrive(market):
    row = predict(time_model())  # start 1.0 at T0, horizon T0 + 10 min
    price(market, "coin", minute(0), 1.0)
    price(market, "coin", minute(1), 1.2)
    price(market, "coin", minute(2), 0.9)

    assert track_ath(now=minute(2.5)) == 1
    assert figures(row) == (Decimal("20"), minute(1), Decimal("-10"), minute(2))

    # Prices inside the extremes change nothing, and nothing is written.
    price(market, "coin", minute(3), 1.1)
    price(market, "coin", minute(4), 0.95)
    assert track_ath(now=minute(4.5)) == 0
    assert figures(row) == (Decimal("20"), minute(1), Decimal("-10"), minute(2))

    # A new high moves only the high; an equal low later keeps the earlier timestamp.
    price(market, "coin", minute(5), 1.5)
    price(market, "coin", minute(6), 0.9)
    assert track_ath(now=minute(6.5)) == 1
    assert figures(row) == (Decimal("50"), minute(5), Decimal("-10"), minute(2))

    price(market, "coin", minute(7), 0.8)
    assert track_ath(now=minute(7.5)) == 1
    assert figures(row) == (Decimal("50"), minute(5), Decimal("-20"), minute(7))


def test_prices_after_now_and_before_the_prediction_are_ignored(market):
    price(market, "coin", minute(-1), 5.0)  # before the prediction
    price(market, "coin", minute(0), 1.0)
    price(market, "coin", minute(2), 1.1)
    price(market, "coin", minute(4), 9.0)  # not yet "now"
    row = predict(time_model())

    track_ath(now=minute(3))

    assert figures(row) == (Decimal("10"), minute(2), None, None)


def test_each_row_sees_the_prices_from_its_own_prediction_on(market):
    model = time_model()
    early = predict(model, start=1.0)
    late = predict(model, start=1.1, at=minute(3))
    for at, close in [(0, 1.0), (1, 1.6), (3, 1.1), (5, 1.5), (6, 0.8)]:
        price(market, "coin", minute(at), close)

    assert track_ath(now=minute(6)) == 2

    assert figures(early) == (Decimal("60"), minute(1), Decimal("-20"), minute(6))
    assert figures(late) == (Decimal("36.3636"), minute(5), Decimal("-27.2727"), minute(6))


def test_the_price_at_the_prediction_instant_counts(market):
    """The collector may rewrite the bucket predicted on; its close at that very instant belongs to the window."""
    row = predict(time_model(), at=minute(1))
    price(market, "coin", minute(1), 1.25)

    track_ath(now=minute(2))

    assert figures(row) == (Decimal("25"), minute(1), None, None)


def test_a_price_that_only_fell_leaves_the_high_empty(market):
    row = predict(time_model())
    price(market, "coin", minute(0), 1.0)
    price(market, "coin", minute(1), 0.7)

    track_ath(now=minute(2))

    assert figures(row) == (None, None, Decimal("-30"), minute(1))


def test_tracked_figures_never_shrink(market):
    row = predict(time_model(), ath_highest_pct=Decimal("80"), ath_highest_timestamp=minute(0.5),
                  ath_lowest_pct=Decimal("-50"), ath_lowest_timestamp=minute(0.7))
    price(market, "coin", minute(1), 1.5)
    price(market, "coin", minute(2), 0.6)

    assert track_ath(now=minute(3)) == 0
    assert figures(row) == (Decimal("80"), minute(0.5), Decimal("-50"), minute(0.7))


def test_rows_outside_their_horizon_or_evaluated_or_without_start_price_are_untouched(market):
    model = time_model()
    inside = predict(model, coin="inside")
    past_horizon = predict(model, coin="past", at=minute(-20))  # horizon at -10: due, awaiting evaluation
    evaluated = predict(model, coin="done", status="inaktiv", evaluation_result="failed")
    no_start = predict(model, coin="nostart", start=None)
    for coin in ("inside", "past", "done", "nostart"):
        price(market, coin, minute(1), 2.0)

    assert track_ath(now=minute(2)) == 1

    assert figures(inside) == (Decimal("100"), minute(1), None, None)
    for row in (past_horizon, evaluated, no_start):
        assert figures(row) == (None, None, None, None)


def test_every_open_row_is_tracked_in_one_run(market):
    """The existing server took 200 rows per run, so older rows could starve."""
    models = [time_model() for _ in range(3)]
    coins = [f"coin{i}" for i in range(100)]
    for index, coin in enumerate(coins):
        price(market, coin, minute(0), 1.0)
        price(market, coin, minute(1), 1 + (index + 1) / 100)
    ModelPrediction.objects.bulk_create(
        ModelPrediction(coin_id=coin, active_model=model, prediction=1, probability=0.9, tag="alert",
                        prediction_timestamp=T0, evaluation_timestamp=minute(10),
                        price_close_at_prediction=Decimal("1"))
        for model in models for coin in coins
    )

    assert track_ath(now=minute(2)) == 300

    highs = dict(ModelPrediction.objects.filter(active_model=models[2]).values_list("coin_id", "ath_highest_pct"))
    assert highs == {coin: Decimal(index + 1) for index, coin in enumerate(coins)}
    assert not ModelPrediction.objects.filter(ath_highest_timestamp__isnull=True).exists()
