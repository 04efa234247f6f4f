"""A synthetic pump.fun market that writes `coin_metrics` rows the way the collector does (spec §1.1).

Used by `manage.py simulate_market` for demos, load tests and end-to-end tests. Pure and deterministic: no Django,
all randomness from seeded numpy generators, so the same seed, start and coin count give the same rows.

The model, trade by trade:

* Coins live on a pump.fun bonding curve: virtual SOL × virtual tokens stays constant, so a buy of x SOL adds x to
  the SOL side and the price (SOL ÷ tokens = SOL² ÷ k) rises; a sell takes SOL out. Launch price ≈ 2.8e-8 SOL.
  A coin graduates (and tracking stops) once the curve is 99.5 % full.
* Each simulated second every coin draws its trades (Poisson count, log-normal sizes, plus occasional whales and dev
  sells) from a behaviour that depends on its destiny and age:
    - fade (most coins): a fresh crowd buys and sells about evenly, then activity decays exponentially and sellers
      take over, so the price drifts down and volume dries up until the coin is dropped;
    - pump: first whales accumulate for two to five minutes while buy pressure and activity rise (the precursor a
      model can learn), then a few minutes of growing crowds and buy pressure that wane before the top, then a dump
      of heavy sells, usually opened by the dev selling everything, then a quick fade;
    - false start: the same accumulation, but no pump follows: the whales give up and sell into a leaving crowd;
    - wash: bots trading back and forth among few wallets (low unique_signer_ratio) and leaning against any move,
      so the price stays flat;
    - rug: the dev sells its launch bag in one or a few chunks, the price collapses and the coin dies.
  Outside pumps the noise is real but moderate (a fading coin rarely gains 15 % in two minutes), so what precedes
  a pump, not chance, decides most big moves: a model trained on this market (`train_model`, `train_demo_model`)
  ranks the coins that will gain well above those that will not (tests/test_demo_market.py measures it).
* The collector's flush cycle runs once per simulated second. A coin is flushed when its phase's interval has passed
  (phase 1 every 5 s up to 10 min of age, phase 2 every 30 s up to 60 min, phase 3 every 60 s up to 24 h) and gets a
  row only if it traded in that interval. All rows of one cycle share the cycle's timestamp.
* About `coins` coins are kept alive: dead coins are replaced by newborn ones. The first population starts at random
  ages so that phases 2 and 3 show up within minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np

from predictions.simulation_rows import COLUMNS, CURVE_FULL_SOL, CoinMetricsRow, format_rows

__all__ = ["COLUMNS", "PHASES", "CoinMetricsRow", "MarketSimulator"]

# pump.fun's curve at launch: 30 virtual SOL against 1.073 billion virtual tokens.
LAUNCH_VIRTUAL_SOL = 30.0
LAUNCH_VIRTUAL_TOKENS = 1_073_000_000.0
CURVE_K = LAUNCH_VIRTUAL_SOL * LAUNCH_VIRTUAL_TOKENS
GRADUATION_SOL = CURVE_FULL_SOL * 0.995  # the collector stops tracking a coin once its curve is 99.5 % full
WHALE_TRADE_SOL = 1.0
MICRO_TRADE_SOL = 0.01

# Collector seed of ref_coin_phases: (id, flush interval in s, age in s at which the coin leaves the phase).
PHASES = ((1, 5, 10 * 60), (2, 30, 60 * 60), (3, 60, 1440 * 60))
_PHASE_IDS = np.array([phase_id for phase_id, _, _ in PHASES])
_PHASE_INTERVALS = np.array([interval for _, interval, _ in PHASES])
_PHASE_ENDS = np.array([end for _, _, end in PHASES])
MAX_TRACKED_AGE = PHASES[-1][2]

FADE, PUMP, WASH, RUG, TEASE = 0, 1, 2, 3, 4
DESTINY_SHARES = (0.66, 0.12, 0.08, 0.08, 0.06)

# A coin expected to trade less than once every ~4 minutes is as good as dead; replacing it keeps the market lively.
MIN_TRADES_PER_SECOND = 0.004
# Dead coins are replaced gradually (the deficit is refilled over about this many seconds), so births are continuous.
REFILL_SECONDS = 10.0
TRADE_SIZE_SPREAD = 1.0  # sigma of log(trade size): most trades ~0.1 SOL, under 1 % whales, ~2 % micro trades
# Sizes below this after the curve limits are applied would be zero at the column scale: not a trade.
DUST_SOL = 1e-6

BASE58 = np.array(list("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"))
MINT_RANDOM_CHARS = 40  # + "pump" = 44 characters, like a real pump.fun mint



def _phase_index(age: np.ndarray) -> np.ndarray:
    """Index into PHASES for each age in seconds; ages past the last phase stay in it (the coin leaves then)."""
    return np.minimum(np.searchsorted(_PHASE_ENDS, age, side="right"), len(PHASES) - 1)


class _Columns:
    """Per-coin numpy columns that are filtered and appended together (one entry per live coin, birth order)."""

    def select(self, which: np.ndarray):
        return type(self)(**{f.name: getattr(self, f.name)[which] for f in fields(self)})

    def extend(self, other):
        return type(self)(
            **{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)}
        )

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))


@dataclass
class _Coins(_Columns):
    """What each live coin is (drawn at birth) and where its curve stands. Times are ages in seconds."""

    mint: np.ndarray
    created_tick: np.ndarray
    destiny: np.ndarray
    base_rate: np.ndarray  # trades per second while the coin is fresh
    fade_from_age: np.ndarray  # age at which the decay clock starts (0, or the starting age of the first population)
    fade_seconds: np.ndarray  # time constant of the activity decay
    trade_size: np.ndarray  # median trade size in SOL
    signer_diversity: np.ndarray  # chance that another trade in an interval comes from a new wallet
    anchor_sol: np.ndarray  # where wash bots hold the price
    accumulation_seconds: np.ndarray  # how long whales accumulate before the pump (or the false start) is due
    pump_start_age: np.ndarray
    pump_seconds: np.ndarray
    dump_seconds: np.ndarray
    dev_sell_age: np.ndarray  # age of the dev's first sell; the dev sells `dev_sell_chunks` times, `dev_sell_gap` apart
    dev_sell_chunks: np.ndarray
    dev_sell_gap: np.ndarray
    dev_tokens: np.ndarray  # the dev's launch bag still held
    sol: np.ndarray  # virtual SOL reserves after the last trade
    next_flush_tick: np.ndarray


@dataclass
class _Interval(_Columns):
    """Trades accumulated since a coin's last flush: exactly what the collector aggregates into one row."""

    trades: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    buys: np.ndarray
    sells: np.ndarray
    buy_volume: np.ndarray
    sell_volume: np.ndarray
    micro_trades: np.ndarray
    dev_sold: np.ndarray
    max_buy: np.ndarray
    max_sell: np.ndarray
    whale_buys: np.ndarray
    whale_sells: np.ndarray
    whale_buy_volume: np.ndarray
    whale_sell_volume: np.ndarray

    @classmethod
    def empty(cls, count: int) -> _Interval:
        columns = {f.name: np.zeros(count) for f in fields(cls)}
        columns.update(trades=np.zeros(count, dtype=np.int64), high=np.full(count, -np.inf), low=np.full(count, np.inf))
        for name in ("buys", "sells", "micro_trades", "whale_buys", "whale_sells"):
            columns[name] = np.zeros(count, dtype=np.int64)
        return cls(**columns)

    def reset(self, which: np.ndarray) -> None:
        fresh = _Interval.empty(1)
        for f in fields(self):
            getattr(self, f.name)[which] = getattr(fresh, f.name)[0]


class _Behaviour(NamedTuple):
    """How each coin trades during the current second."""

    trade_rate: np.ndarray
    buy_share: np.ndarray
    buy_size: np.ndarray
    sell_size: np.ndarray
    whale_buy_rate: np.ndarray
    whale_sell_rate: np.ndarray


class _Trades(NamedTuple):
    """The trades of one second, grouped by coin (coin index ascending), in execution order within a coin."""

    coin: np.ndarray
    is_buy: np.ndarray
    size: np.ndarray
    is_dev: np.ndarray


class MarketSimulator:
    """Keeps about `coins` coins trading and returns, per simulated second, the rows the collector flushes.

    `step(timestamp)` advances one second and stamps its rows with `timestamp` (for a clock that follows the wall
    clock); `ticks(start)` yields the rows of consecutive seconds on a simulated clock starting at `start`.
    """

    def __init__(self, *, coins: int, seed: int = 1):
        if coins < 1:
            raise ValueError("coins must be at least 1")
        market_seed, mint_seed, clock_seed = np.random.SeedSequence(seed).spawn(3)
        # Separate streams: mints and flush-time jitter never shift the market's own random draws.
        self._rng = np.random.Generator(np.random.PCG64(market_seed))
        self._mint_rng = np.random.Generator(np.random.PCG64(mint_seed))
        self._clock_rng = np.random.Generator(np.random.PCG64(clock_seed))
        self.target_coins = coins
        self.tick_count = 0
        self.coins_born = 0  # newborn coins after the start; the first population is not counted
        self._coins: _Coins | None = None
        self._interval = _Interval.empty(0)
        self._spawn(self._first_population_ages(coins))

    @property
    def coins_alive(self) -> int:
        return len(self._coins)

    def ticks(self, start: datetime) -> Iterator[list[CoinMetricsRow]]:
        """Rows of each simulated second; the cycle timestamp is `start` + elapsed seconds + a little jitter."""
        while True:
            # The collector's cycle fires a little after the second it is due (it has work to do first).
            jitter = timedelta(microseconds=int(self._clock_rng.integers(0, 200_000)))
            yield self.step(start + timedelta(seconds=self.tick_count) + jitter)

    def step(self, timestamp: datetime) -> list[CoinMetricsRow]:
        """Advance one simulated second and return the rows flushed in it, all stamped `timestamp`."""
        self._births()
        age = self.tick_count - self._coins.created_tick
        behaviour = self._behaviour(age)
        self._trade(self._trades(behaviour, age))
        rows = self._flush(age, behaviour, timestamp)
        self.tick_count += 1
        return rows

    # -- population ------------------------------------------------------------------------------------------

    def _first_population_ages(self, count: int) -> np.ndarray:
        """Starting ages spread over the phases (55 % in phase 1, 30 % in phase 2, 15 % early phase 3)."""
        rng = self._rng
        phase = rng.choice(3, size=count, p=(0.55, 0.30, 0.15))
        lower = np.array([0, 600, 3600])[phase]
        upper = np.array([600, 3600, 4 * 3600])[phase]
        return rng.integers(lower, upper)

    def _births(self) -> None:
        deficit = self.target_coins - self.coins_alive
        if deficit > 0:
            newborn = int(self._rng.poisson(deficit / REFILL_SECONDS))
            if newborn:
                self._spawn(np.zeros(newborn, dtype=np.int64))
                self.coins_born += newborn

    def _spawn(self, ages: np.ndarray) -> None:
        """Add coins that are `ages` seconds old now; age 0 means born this second."""
        rng = self._rng
        count = len(ages)
        destiny = rng.choice(len(DESTINY_SHARES), size=count, p=DESTINY_SHARES)
        is_fade, is_pump, is_wash, is_rug = (destiny == kind for kind in (FADE, PUMP, WASH, RUG))
        already_trading = ages > 0

        # Older survivors trade less; a coin that is an hour old has a fraction of a newborn's crowd.
        base_rate = rng.lognormal(math.log(0.6), 0.6, count) * np.exp(-ages / 3600)
        base_rate[is_wash] *= 2.5
        fade_seconds = rng.lognormal(math.log(240), 0.9, count)
        fade_seconds[is_wash] = rng.uniform(1800, 7200, is_wash.sum())
        trade_size = rng.lognormal(math.log(0.08), 0.35, count)
        trade_size[is_wash] = rng.uniform(0.02, 0.05, is_wash.sum())
        signer_diversity = rng.uniform(0.7, 0.95, count)
        signer_diversity[is_wash] = rng.uniform(0.05, 0.3, is_wash.sum())

        # The dev's launch buy moves the curve before anyone else trades; rug devs buy a bigger bag.
        dev_buy = rng.uniform(0.2, 2.5, count) * np.where(is_rug, 2.5, 1.0)
        launch_sol = LAUNCH_VIRTUAL_SOL + dev_buy
        dev_tokens = LAUNCH_VIRTUAL_TOKENS - CURVE_K / launch_sol
        # Coins already trading have moved along the curve (kept well short of graduation).
        sol = np.minimum(launch_sol + np.where(already_trading, rng.gamma(2.0, 3.0, count), 0.0), 80.0)

        accumulation_seconds = rng.integers(120, 300, count)
        pump_start_age = ages + accumulation_seconds + rng.integers(30, 400, count)
        pump_seconds = rng.integers(180, 480, count)
        dump_seconds = rng.integers(90, 300, count)

        # Who sells the launch bag, and when: a dumping pump dev (usually), a rugger (always), an impatient fade dev.
        never = np.iinfo(np.int64).max // 2
        dev_sell_age = np.full(count, never)
        dev_sell_chunks = np.zeros(count, dtype=np.int64)
        dev_sell_gap = rng.integers(10, 40, count)
        pump_dev_sells = is_pump & (rng.random(count) < 0.7)
        dev_sell_age[pump_dev_sells] = (pump_start_age + pump_seconds + rng.integers(0, 20, count))[pump_dev_sells]
        dev_sell_chunks[pump_dev_sells] = rng.integers(1, 3, count)[pump_dev_sells]
        dev_sell_age[is_rug] = (ages + rng.integers(60, 900, count))[is_rug]
        dev_sell_chunks[is_rug] = rng.integers(1, 5, count)[is_rug]
        fade_dev_sells = is_fade & (rng.random(count) < 0.15)
        dev_sell_age[fade_dev_sells] = (ages + rng.integers(60, 480, count))[fade_dev_sells]
        dev_sell_chunks[fade_dev_sells] = 1

        # Newborns flush first after one phase-1 interval; coins already trading are somewhere in their interval.
        interval = _PHASE_INTERVALS[_phase_index(ages)]
        first_flush = np.where(already_trading, rng.integers(1, interval + 1), interval)

        newcomers = _Coins(
            mint=self._new_mints(count),
            created_tick=self.tick_count - ages,
            destiny=destiny,
            base_rate=base_rate,
            fade_from_age=ages,
            fade_seconds=fade_seconds,
            trade_size=trade_size,
            signer_diversity=signer_diversity,
            anchor_sol=sol.copy(),
            accumulation_seconds=accumulation_seconds,
            pump_start_age=pump_start_age,
            pump_seconds=pump_seconds,
            dump_seconds=dump_seconds,
            dev_sell_age=dev_sell_age,
            dev_sell_chunks=dev_sell_chunks,
            dev_sell_gap=dev_sell_gap,
            dev_tokens=dev_tokens,
            sol=sol,
            next_flush_tick=self.tick_count + first_flush,
        )
        self._coins = newcomers if self._coins is None else self._coins.extend(newcomers)
        self._interval = self._interval.extend(_Interval.empty(count))

    def _new_mints(self, count: int) -> np.ndarray:
        letters = BASE58[self._mint_rng.integers(0, len(BASE58), (count, MINT_RANDOM_CHARS))]
        return np.array(["".join(row) + "pump" for row in letters], dtype=object)

    # -- trading ---------------------------------------------------------------------------------------------

    def _behaviour(self, age: np.ndarray) -> _Behaviour:
        coins = self._coins
        count = len(coins)
        vitality = np.exp(-np.maximum(age - coins.fade_from_age, 0) / coins.fade_seconds)
        trade_rate = coins.base_rate * vitality
        # A fresh crowd buys and sells about evenly; as it leaves, holders sell into thinner demand.
        buy_share = 0.42 + 0.08 * vitality
        buy_size = coins.trade_size * (0.5 + 0.5 * vitality)
        sell_size = coins.trade_size.copy()
        whale_buy_rate = np.zeros(count)
        whale_sell_rate = np.zeros(count)

        # Before a pump (and before a false start, which looks the same) whales accumulate while buy pressure and
        # activity rise; a coin waiting for that has not died yet.
        is_pump, is_tease = coins.destiny == PUMP, coins.destiny == TEASE
        crowd = np.maximum(coins.base_rate, 0.4)  # a pump draws a crowd even to a quiet coin
        to_start = age - coins.pump_start_age
        accumulation = 1 + to_start / coins.accumulation_seconds  # 0 -> 1 while accumulating
        waiting = (is_pump | is_tease) & (accumulation < 1)
        kept_alive = coins.base_rate * np.maximum(vitality, 0.35)
        trade_rate[waiting] = kept_alive[waiting]
        accumulating = waiting & (accumulation >= 0)
        ramp = accumulation[accumulating]
        trade_rate[accumulating] = np.maximum(kept_alive, crowd * (0.5 + 0.5 * accumulation))[accumulating]
        buy_share[accumulating] = 0.52 + 0.28 * ramp
        whale_buy_rate[accumulating] = 0.035 * ramp

        # A false start: the whales give up and sell into a crowd that leaves.
        teased = is_tease & (to_start >= 0)
        since_tease = to_start[teased]
        trade_rate[teased] = crowd[teased] * 0.7 * np.exp(-since_tease / 150)
        buy_share[teased] = 0.35
        whale_sell_rate[teased] = 0.02 * np.exp(-since_tease / 90)

        # A pump: a few minutes of growing crowds, buy pressure and whales; then the dump; then the leftovers fade.
        pump_progress = to_start / coins.pump_seconds
        dump_age = to_start - coins.pump_seconds
        dump_progress = dump_age / coins.dump_seconds
        pumping = is_pump & (pump_progress >= 0) & (pump_progress < 1)
        dumping = is_pump & (dump_progress >= 0) & (dump_progress < 1)
        faded = is_pump & (dump_progress >= 1)
        ramp = pump_progress[pumping]
        trade_rate[pumping] = crowd[pumping] * (1 + 2 * ramp)
        # Momentum wanes before the top: buy pressure and whales fade over the pump's last quarter.
        waning = np.clip(4 * ramp - 3, 0, 1)
        buy_share[pumping] = 0.68 - 0.16 * waning
        buy_size[pumping] = coins.trade_size[pumping] * (1 + 0.3 * ramp)
        whale_buy_rate[pumping] = 0.03 * (1 - waning)
        trade_rate[dumping] = crowd[dumping] * (4 - 2 * dump_progress[dumping])
        buy_share[dumping] = 0.22
        sell_size[dumping] = coins.trade_size[dumping] * 1.6
        whale_sell_rate[dumping] = 0.05
        trade_rate[faded] = 0.5 * crowd[faded] * np.exp(-(dump_age - coins.dump_seconds)[faded] / 120)
        buy_share[faded] = 0.38

        # After a rug the crowd panics out and leaves within minutes.
        rugged = (coins.destiny == RUG) & (age >= coins.dev_sell_age)
        since_rug = (age - coins.dev_sell_age)[rugged]
        trade_rate[rugged] = coins.base_rate[rugged] * 1.5 * np.exp(-since_rug / 90)
        buy_share[rugged] = 0.3

        # Wash bots trade both sides and lean against any move, so the price stays near where they hold it.
        wash = coins.destiny == WASH
        buy_share[wash] = np.clip(0.5 - 0.1 * (coins.sol - coins.anchor_sol)[wash], 0.3, 0.7)
        return _Behaviour(trade_rate, buy_share, buy_size, sell_size, whale_buy_rate, whale_sell_rate)

    def _trades(self, behaviour: _Behaviour, age: np.ndarray) -> _Trades:
        rng = self._rng
        coins = self._coins
        coin_ids = np.arange(len(coins))

        regular_coin = np.repeat(coin_ids, rng.poisson(behaviour.trade_rate))
        regular_is_buy = rng.random(len(regular_coin)) < behaviour.buy_share[regular_coin]
        regular_size = np.where(regular_is_buy, behaviour.buy_size[regular_coin], behaviour.sell_size[regular_coin])
        regular_size = regular_size * np.exp(TRADE_SIZE_SPREAD * rng.standard_normal(len(regular_coin)))

        whale_buy_coin = np.repeat(coin_ids, rng.poisson(behaviour.whale_buy_rate))
        whale_sell_coin = np.repeat(coin_ids, rng.poisson(behaviour.whale_sell_rate))
        whale_sizes = WHALE_TRADE_SOL + rng.exponential(1.5, len(whale_buy_coin) + len(whale_sell_coin))

        # The dev sells its remaining bag in equal parts: the j-th of n sells takes 1/(n-j) of what is left.
        since_first_sell = age - coins.dev_sell_age
        chunk = since_first_sell // coins.dev_sell_gap
        dev_sells_now = (
            (since_first_sell >= 0) & (since_first_sell % coins.dev_sell_gap == 0) & (chunk < coins.dev_sell_chunks)
        )
        dev_coin = coin_ids[dev_sells_now]
        dev_tokens_sold = coins.dev_tokens[dev_coin] / (coins.dev_sell_chunks[dev_coin] - chunk[dev_coin])
        coins.dev_tokens[dev_coin] -= dev_tokens_sold
        dev_sol = coins.sol[dev_coin]
        dev_size = dev_sol - CURVE_K / (CURVE_K / dev_sol + dev_tokens_sold)

        coin = np.concatenate([regular_coin, whale_buy_coin, whale_sell_coin, dev_coin])
        is_buy = np.concatenate([
            regular_is_buy, np.ones(len(whale_buy_coin), bool), np.zeros(len(whale_sell_coin) + len(dev_coin), bool),
        ])
        size = np.concatenate([regular_size, whale_sizes, dev_size])
        is_dev = np.concatenate([np.zeros(len(coin) - len(dev_coin), bool), np.ones(len(dev_coin), bool)])

        # Within a coin the second's trades arrive in random order.
        order = np.lexsort((rng.random(len(coin)), coin))
        coin, is_buy, size, is_dev = coin[order], is_buy[order], size[order], is_dev[order]
        size = size * self._curve_limits(coin, is_buy, size)
        real = size >= DUST_SOL
        return _Trades(coin[real], is_buy[real], size[real], is_dev[real])

    def _curve_limits(self, coin: np.ndarray, is_buy: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Per-trade factor (≤ 1) so that one second's buys cannot overfill the curve and its sells cannot take more
        than 90 % of the real SOL in it; with both totals bounded, no order of the trades can break the curve."""
        coins = self._coins
        count = len(coins)
        buy_total = np.bincount(coin, weights=np.where(is_buy, size, 0.0), minlength=count)
        sell_total = np.bincount(coin, weights=np.where(is_buy, 0.0, size), minlength=count)
        room = (CURVE_FULL_SOL - coins.sol) * 0.999
        real_sol = 0.9 * (coins.sol - LAUNCH_VIRTUAL_SOL)
        with np.errstate(divide="ignore", invalid="ignore"):
            buy_factor = np.where(buy_total > room, room / buy_total, 1.0)
            sell_factor = np.where(sell_total > real_sol, real_sol / sell_total, 1.0)
        return np.clip(np.where(is_buy, buy_factor[coin], sell_factor[coin]), 0.0, 1.0)

    def _trade(self, trades: _Trades) -> None:
        """Run the trades through each coin's curve and add them to the coin's open interval."""
        coins, interval = self._coins, self._interval
        count = len(coins)
        if not len(trades.coin):
            return
        coin, is_buy, size = trades.coin, trades.is_buy, trades.size
        per_coin = np.bincount(coin, minlength=count)
        traded = per_coin > 0
        ends = np.cumsum(per_coin)
        starts = ends - per_coin
        flow = np.cumsum(np.where(is_buy, size, -size))
        flow_before_coin = np.concatenate([[0.0], flow])[starts]
        sol_after_trade = coins.sol[coin] + flow - flow_before_coin[coin]
        price = sol_after_trade * sol_after_trade / CURVE_K

        first_of_coin, last_of_coin = starts[traded], ends[traded] - 1
        opening = traded & (interval.trades == 0)
        interval.open[opening] = price[starts[opening]]
        interval.high[traded] = np.maximum(interval.high[traded], np.maximum.reduceat(price, first_of_coin))
        interval.low[traded] = np.minimum(interval.low[traded], np.minimum.reduceat(price, first_of_coin))
        interval.close[traded] = price[last_of_coin]
        coins.sol[traded] = sol_after_trade[last_of_coin]
        interval.trades += per_coin

        def per_coin_sum(mask, weights=None):
            return np.bincount(coin[mask], weights=None if weights is None else weights[mask], minlength=count)

        is_sell = ~is_buy
        is_whale = size >= WHALE_TRADE_SOL
        interval.buys += per_coin_sum(is_buy)
        interval.sells += per_coin_sum(is_sell)
        interval.buy_volume += per_coin_sum(is_buy, size)
        interval.sell_volume += per_coin_sum(is_sell, size)
        interval.micro_trades += per_coin_sum(size < MICRO_TRADE_SOL)
        interval.dev_sold += per_coin_sum(trades.is_dev, size)
        interval.whale_buys += per_coin_sum(is_buy & is_whale)
        interval.whale_sells += per_coin_sum(is_sell & is_whale)
        interval.whale_buy_volume += per_coin_sum(is_buy & is_whale, size)
        interval.whale_sell_volume += per_coin_sum(is_sell & is_whale, size)
        np.maximum.at(interval.max_buy, coin[is_buy], size[is_buy])
        np.maximum.at(interval.max_sell, coin[is_sell], size[is_sell])

    # -- the collector's flush cycle -------------------------------------------------------------------------

    def _flush(self, age: np.ndarray, behaviour: _Behaviour, timestamp: datetime) -> list[CoinMetricsRow]:
        coins, interval = self._coins, self._interval
        phase = _phase_index(age)
        graduated = coins.sol >= GRADUATION_SOL
        too_old = age >= MAX_TRACKED_AGE
        due = (self.tick_count >= coins.next_flush_tick) | graduated | too_old
        rows = self._rows(np.flatnonzero(due & (interval.trades > 0)), phase, timestamp)

        coins.next_flush_tick[due] = self.tick_count + _PHASE_INTERVALS[phase[due]]
        interval.reset(due)
        # Coins leave at a flush, so their last trades are written first.
        leaving = due & (graduated | too_old | (behaviour.trade_rate < MIN_TRADES_PER_SECOND))
        if leaving.any():
            self._coins = coins.select(~leaving)
            self._interval = interval.select(~leaving)
        return rows

    def _rows(self, flushed: np.ndarray, phase: np.ndarray, timestamp: datetime) -> list[CoinMetricsRow]:
        if not len(flushed):
            return []
        coins = self._coins.select(flushed)
        # A wash trader's interval has few distinct wallets behind many trades; a real crowd is mostly distinct.
        unique_wallets = 1 + self._rng.binomial(self._interval.trades[flushed] - 1, coins.signer_diversity)
        # Plain Python numbers from here on: formatting numpy scalars one at a time is several times slower.
        flushed_interval = self._interval.select(flushed)
        interval = {f.name: getattr(flushed_interval, f.name).tolist() for f in fields(flushed_interval)}
        return format_rows(
            mints=coins.mint, sols=coins.sol.tolist(), wallets=unique_wallets.tolist(), interval=interval,
            phase_ids=_PHASE_IDS[phase[flushed]].tolist(), timestamp=timestamp,
        )
