"""The handbook's three fraud scenarios, applied one day at a time.

1. Every amount above the threshold (220) is fraud.
2. Each day a few terminals are compromised; all their transactions in the next 28 days
   (the compromise day included) are fraud.
3. Each day a few customers are compromised; one third of their transactions in the next
   14 days have their amount multiplied by 5 and are fraud.

Scenario 3 picks exactly ``floor(n / 3)`` of the ``n`` transactions of a window, at random,
like the handbook's ``random.sample``. A window spans many days, so the pick is made once
per window from the customer's per-day transaction counts (cheap to compute for any day)
and then applied day by day by rank: the result does not depend on chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from lakebed.world.spec import WorldSpec
from lakebed.world.streams import Purpose, stream

IntArray = npt.NDArray[np.int64]
CountsOn = Callable[[int], IntArray]

NO_FRAUD, AMOUNT_SCENARIO, TERMINAL_SCENARIO, CUSTOMER_SCENARIO = 0, 1, 2, 3


@dataclass(frozen=True)
class Labels:
    is_fraud: npt.NDArray[np.bool_]
    scenario: npt.NDArray[np.int8]
    amount_cents: IntArray


class FraudScenarios:
    """Labels one day's transactions; ``counts_on(day)`` gives transactions per customer."""

    def __init__(self, spec: WorldSpec, counts_on: CountsOn) -> None:
        self._spec = spec
        self._fraud = spec.fraud
        self._counts_on = counts_on
        self.compromised_terminals = lru_cache(maxsize=None)(self._compromised_terminals)
        self.compromised_customers = lru_cache(maxsize=None)(self._compromised_customers)
        self._picks: dict[tuple[int, int], npt.NDArray[np.int64]] = {}

    def _compromised_terminals(self, day: int) -> IntArray:
        rng = stream(self._spec.seed, Purpose.COMPROMISED_TERMINALS, day)
        size = self._fraud.compromised_terminals_per_day
        return np.sort(rng.choice(self._spec.n_terminals, size=size, replace=False))

    def _compromised_customers(self, day: int) -> IntArray:
        rng = stream(self._spec.seed, Purpose.COMPROMISED_CUSTOMERS, day)
        size = self._fraud.compromised_customers_per_day
        return np.sort(rng.choice(self._spec.n_customers, size=size, replace=False))

    def active_terminals(self, day: int) -> IntArray:
        first = max(0, day - self._fraud.terminal_window_days + 1)
        days = range(first, day + 1)
        return np.unique(np.concatenate([self.compromised_terminals(d) for d in days]))

    def active_customer_windows(self, day: int) -> list[tuple[int, int]]:
        """(compromise day, customer) of every scenario-3 window open on ``day``."""
        first = max(0, day - self._fraud.customer_window_days + 1)
        return [
            (start, int(customer))
            for start in range(first, day + 1)
            for customer in self.compromised_customers(start)
        ]

    def _window_pick(self, start: int, customer: int) -> IntArray:
        """Ranks (0-based, in time order) of the window's transactions made fraudulent."""
        key = (start, customer)
        if key not in self._picks:
            last = min(start + self._fraud.customer_window_days, self._spec.n_days)
            total = sum(int(self._counts_on(d)[customer]) for d in range(start, last))
            rng = stream(self._spec.seed, Purpose.CUSTOMER_FRAUD_PICK, start, customer)
            self._picks[key] = np.sort(rng.choice(total, size=total // 3, replace=False))
        return self._picks[key]

    def forget_before(self, day: int) -> None:
        """Drop windows closed before ``day``; keeps memory flat over long worlds."""
        horizon = day - self._fraud.customer_window_days
        for key in [k for k in self._picks if k[0] < horizon]:
            del self._picks[key]

    def label(
        self,
        day: int,
        customer_ids: IntArray,
        terminal_ids: IntArray,
        amount_cents: IntArray,
    ) -> Labels:
        """Labels for one day's transactions, given in time order."""
        scenario = np.zeros(len(customer_ids), dtype=np.int8)
        threshold_cents = round(self._fraud.amount_threshold * 100)
        scenario[amount_cents > threshold_cents] = AMOUNT_SCENARIO
        scenario[np.isin(terminal_ids, self.active_terminals(day))] = TERMINAL_SCENARIO

        amounts = amount_cents.copy()
        windows = self.active_customer_windows(day)
        targets = np.array([customer for _, customer in windows], dtype=np.int64)
        candidates = np.flatnonzero(np.isin(customer_ids, targets))
        for start, customer in windows:
            rows = candidates[customer_ids[candidates] == customer]
            if len(rows) == 0:
                continue
            before = sum(int(self._counts_on(d)[customer]) for d in range(start, day))
            ranks = before + np.arange(len(rows))
            picked = rows[np.isin(ranks, self._window_pick(start, customer))]
            # Overlapping windows of one customer multiply twice, as the handbook does.
            amounts[picked] *= self._fraud.customer_amount_multiplier
            scenario[picked] = CUSTOMER_SCENARIO
        return Labels(scenario > NO_FRAUD, scenario, amounts)
