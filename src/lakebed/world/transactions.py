"""The ground-truth transactions of a world, generated one day at a time, vectorised.

Per customer and day the handbook draws Poisson(mean tx/day) transactions, a time of day
~ Normal(43200 s, 20000 s) (draws outside the day are discarded), an amount ~ Normal(mean,
std) (a negative draw is redrawn from U(0, 2 mean)) rounded to cents, and a terminal
uniformly among those in reach. Here each of those is one NumPy call over all customers of
a day, from a stream keyed by the day (see ``streams``): no loop per customer or
transaction, and a day's rows never depend on which days were generated before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import polars as pl

from lakebed.world.fraud import FraudScenarios
from lakebed.world.profiles import (
    Customers,
    Reach,
    Terminals,
    make_customers,
    make_reach,
    make_terminals,
)
from lakebed.world.spec import WorldSpec
from lakebed.world.streams import Purpose, stream

IntArray = npt.NDArray[np.int64]

SECONDS_PER_DAY = 86_400
TIME_OF_DAY_MEAN = SECONDS_PER_DAY / 2
TIME_OF_DAY_STD = 20_000

TRUTH_SCHEMA = pl.Schema(
    {
        "transaction_id": pl.Int64(),
        "tx_datetime": pl.Datetime("us"),
        "customer_id": pl.Int64(),
        "terminal_id": pl.Int64(),
        "amount_cents": pl.Int64(),
        "is_fraud": pl.Boolean(),
        "fraud_scenario": pl.Int8(),
    }
)


class TransactionSimulator:
    """Generates a world's days in order; ``day(d)`` must be called for d = 0, 1, 2, ..."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self.customers: Customers = make_customers(spec)
        self.terminals: Terminals = make_terminals(spec)
        self.reach: Reach = make_reach(self.customers, self.terminals, spec.radius)
        self.fraud = FraudScenarios(spec, self.counts_on)
        self._reach_counts = self.reach.counts
        self._can_pay = self._reach_counts > 0
        self._start = np.datetime64(spec.start_date, "us")
        self._times: dict[int, tuple[IntArray, IntArray]] = {}
        self._counts: dict[int, IntArray] = {}
        self._next_day = 0
        self._next_id = 0

    def _draw_times(self, day: int) -> tuple[IntArray, IntArray]:
        """(customer, second of day) of the day's kept transactions, customers ascending."""
        if day not in self._times:
            rng = stream(self.spec.seed, Purpose.TX_TIMES, day)
            per_customer = rng.poisson(self.customers.mean_tx_per_day)
            customer = np.repeat(np.arange(self.customers.size, dtype=np.int64), per_customer)
            # astype truncates toward zero, exactly like the handbook's int(...).
            seconds = rng.normal(TIME_OF_DAY_MEAN, TIME_OF_DAY_STD, len(customer)).astype(np.int64)
            keep = (seconds > 0) & (seconds < SECONDS_PER_DAY) & self._can_pay[customer]
            self._times[day] = (customer[keep], seconds[keep])
        return self._times[day]

    def counts_on(self, day: int) -> IntArray:
        """Transactions per customer on ``day``; cheap, so scenario 3 can look ahead."""
        if day not in self._counts:
            customer, _ = self._draw_times(day)
            self._counts[day] = np.bincount(customer, minlength=self.customers.size)
        return self._counts[day]

    def day(self, day: int) -> pl.DataFrame:
        if day != self._next_day:
            raise ValueError(f"days are generated in order: expected day {self._next_day}")
        customer, seconds = self._draw_times(day)
        self._forget_before(day)

        rng = stream(self.spec.seed, Purpose.TX_AMOUNTS, day)
        mean = self.customers.mean_amount[customer]
        amount = rng.normal(mean, self.customers.std_amount[customer])
        negative = amount < 0
        amount[negative] = rng.uniform(0, 2 * mean[negative])
        # A payment is at least one cent: the handbook's rounding can give 0.00 (about 1 in
        # 50,000 transactions), which no card network would carry.
        amount_cents = np.maximum(np.rint(amount * 100).astype(np.int64), 1)

        rng = stream(self.spec.seed, Purpose.TX_TERMINALS, day)
        pick = rng.integers(0, self._reach_counts[customer])
        terminal = self.reach.terminal_ids[self.reach.offsets[customer] + pick]

        # Time order; ties keep customer order then draw order (a stable sort).
        order = np.argsort(seconds, kind="stable")
        customer, seconds = customer[order], seconds[order]
        terminal, amount_cents = terminal[order], amount_cents[order]
        labels = self.fraud.label(day, customer, terminal, amount_cents)

        size = len(customer)
        ids = np.arange(self._next_id, self._next_id + size, dtype=np.int64)
        offset = (day * SECONDS_PER_DAY + seconds) * 1_000_000
        self._next_id += size
        self._next_day += 1
        return pl.DataFrame(
            {
                "transaction_id": ids,
                "tx_datetime": self._start + offset.astype("timedelta64[us]"),
                "customer_id": customer,
                "terminal_id": terminal,
                "amount_cents": labels.amount_cents,
                "is_fraud": labels.is_fraud,
                "fraud_scenario": labels.scenario,
            },
            schema=TRUTH_SCHEMA,
        )

    def _forget_before(self, day: int) -> None:
        self._times.pop(day - 1, None)
        horizon = day - self.spec.fraud.customer_window_days
        for old in [d for d in self._counts if d < horizon]:
            del self._counts[old]
        self.fraud.forget_before(day)

    def days(self, first: int, last: int) -> Iterator[pl.DataFrame]:
        """Days ``first`` .. ``last - 1``, in order."""
        for day in range(first, last):
            yield self.day(day)
