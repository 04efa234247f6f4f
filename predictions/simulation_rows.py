"""The rows the simulated collector writes: `CoinMetricsRow` (the `coin_metrics` columns, in table order) and the
formatting of a flush cycle's intervals into rows at the column scales (predictions/simulation.py drives it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

TOKEN_SUPPLY = 1_000_000_000  # market cap = price × supply (the collector: price_close × 1e9)
# The collector's bonding_curve_pct is virtual SOL ÷ 85 × 100.
CURVE_FULL_SOL = 85.0
KOTH_MARKET_CAP = Decimal(30000)

_SCALE_PRICE = "{:.18f}".format
_SCALE_SOL = "{:.6f}".format
_SCALE_RATIO = "{:.6f}".format
_SCALE_PCT = "{:.4f}".format
_CENT = Decimal("0.01")
_MICRO = Decimal("0.000001")
_ZERO_RATIO = Decimal("0.000000")


class CoinMetricsRow(NamedTuple):
    """One coin_metrics row; fields in the table's column order (without `id`), numbers at the column scales."""

    mint: str
    timestamp: datetime
    phase_id_at_time: int
    price_open: Decimal
    price_high: Decimal
    price_low: Decimal
    price_close: Decimal
    market_cap_close: Decimal
    bonding_curve_pct: Decimal
    virtual_sol_reserves: Decimal
    is_koth: bool
    volume_sol: Decimal
    buy_volume_sol: Decimal
    sell_volume_sol: Decimal
    num_buys: int
    num_sells: int
    unique_wallets: int
    num_micro_trades: int
    dev_sold_amount: Decimal
    max_single_buy_sol: Decimal
    max_single_sell_sol: Decimal
    net_volume_sol: Decimal
    volatility_pct: Decimal
    avg_trade_size_sol: Decimal
    whale_buy_volume_sol: Decimal
    whale_sell_volume_sol: Decimal
    num_whale_buys: int
    num_whale_sells: int
    buy_pressure_ratio: Decimal
    unique_signer_ratio: Decimal


COLUMNS = CoinMetricsRow._fields


def format_rows(
    *, mints: Sequence[str], sols: list[float], wallets: list[int], interval: dict[str, list], phase_ids: list[int],
    timestamp: datetime,
) -> list[CoinMetricsRow]:
    """One row per flushed coin from its interval's plain-Python sums (`interval[name][k]` for coin k)."""
    rows = []
    for k, (mint, sol, wallet_count) in enumerate(zip(mints, sols, wallets)):
        trades = interval["trades"][k]
        price_open, price_high = interval["open"][k], interval["high"][k]
        price_low, price_close = interval["low"][k], interval["close"][k]
        close = Decimal(_SCALE_PRICE(price_close))
        market_cap = (close * TOKEN_SUPPLY).quantize(_CENT)
        # Sums and ratios from the rounded volumes, so the stored columns agree with each other exactly.
        buys = Decimal(_SCALE_SOL(interval["buy_volume"][k]))
        sells = Decimal(_SCALE_SOL(interval["sell_volume"][k]))
        volume = buys + sells
        rows.append(CoinMetricsRow(
            mint=mint,
            timestamp=timestamp,
            phase_id_at_time=phase_ids[k],
            price_open=Decimal(_SCALE_PRICE(price_open)),
            price_high=Decimal(_SCALE_PRICE(price_high)),
            price_low=Decimal(_SCALE_PRICE(price_low)),
            price_close=close,
            market_cap_close=market_cap,
            bonding_curve_pct=Decimal(_SCALE_PCT(sol / CURVE_FULL_SOL * 100)),
            virtual_sol_reserves=Decimal(_SCALE_SOL(sol)),
            is_koth=market_cap > KOTH_MARKET_CAP,
            volume_sol=volume,
            buy_volume_sol=buys,
            sell_volume_sol=sells,
            num_buys=interval["buys"][k],
            num_sells=interval["sells"][k],
            unique_wallets=wallet_count,
            num_micro_trades=interval["micro_trades"][k],
            dev_sold_amount=Decimal(_SCALE_SOL(interval["dev_sold"][k])),
            max_single_buy_sol=Decimal(_SCALE_SOL(interval["max_buy"][k])),
            max_single_sell_sol=Decimal(_SCALE_SOL(interval["max_sell"][k])),
            net_volume_sol=buys - sells,
            volatility_pct=Decimal(_SCALE_PCT((price_high - price_low) / price_open * 100)),
            avg_trade_size_sol=(volume / trades).quantize(_MICRO),
            whale_buy_volume_sol=Decimal(_SCALE_SOL(interval["whale_buy_volume"][k])),
            whale_sell_volume_sol=Decimal(_SCALE_SOL(interval["whale_sell_volume"][k])),
            num_whale_buys=interval["whale_buys"][k],
            num_whale_sells=interval["whale_sells"][k],
            buy_pressure_ratio=(buys / volume).quantize(_MICRO) if volume else _ZERO_RATIO,
            unique_signer_ratio=Decimal(_SCALE_RATIO(wallet_count / trades)),
        ))
    return rows

