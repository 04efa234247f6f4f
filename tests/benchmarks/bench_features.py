"""Micro-benchmark of inference.features.build_features (plain script, not a test).

Builds the parity XGB model's 87 features for 2,000 coins x 300 history rows (synthetic
values, float32-exact like real data) and prints history rows processed per second.

    .venv/bin/python tests/benchmarks/bench_features.py [--coins 2000] [--rows 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_DIR))

from inference.features import VALUE_COLUMNS, CoinHistories, build_features  # noqa: E402


def synthetic_histories(n_coins: int, n_rows: int, seed: int = 0) -> CoinHistories:
    rng = np.random.default_rng(seed)
    n = n_coins * n_rows
    columns = {name: np.round(rng.gamma(2.0, 2.0, n), 6) for name in VALUE_COLUMNS}
    price = np.round(2.8e-8 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 18)
    columns.update(price_open=price, price_high=price * 1.01, price_low=price * 0.99, price_close=price)
    columns["market_cap_close"] = np.round(price * 1e9, 2)
    columns["net_volume_sol"] = np.round(rng.normal(0, 2, n), 6)
    columns["phase_id_at_time"] = np.full(n, 1.0)
    columns["is_koth"] = np.zeros(n)
    for name in ("buy_pressure_ratio", "unique_signer_ratio"):
        columns[name] = np.round(rng.random(n), 6)
    for name, values in columns.items():  # a few NULLs, as in real data
        values[rng.random(n) < 0.01] = np.nan
    step_ns = 5_000_000_000
    timestamps = 1_763_632_800_000_000_000 + np.arange(n, dtype=np.int64) * step_ns
    return CoinHistories(
        mints=[f"coin{i}pump" for i in range(n_coins)],
        offsets=np.arange(0, n + 1, n_rows, dtype=np.int64),
        timestamps_ns=timestamps,
        columns=columns,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    meta = json.loads((PROJECT_DIR / "tests/fixtures/parity_public/model_xgb.meta.json").read_text())
    params = meta["params"]
    histories = synthetic_histories(args.coins, args.rows)
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        matrix = build_features(
            histories,
            feature_names=meta["features"],
            engineered=params["use_engineered_features"],
            windows=params["feature_engineering_windows"],
        )
        timings.append(time.perf_counter() - started)
    best = min(timings)
    rows = args.coins * args.rows
    print(
        f"{args.coins} coins x {args.rows} rows, {matrix.shape[1]} features: "
        f"best {best:.3f} s of {args.repeat} -> {rows / best:,.0f} history rows/s, "
        f"{args.coins / best:,.0f} coins/s"
    )


if __name__ == "__main__":
    main()
