"""Random streams keyed by what they decide, not by the order in which they are used.

Every draw of the simulator comes from a generator seeded by ``(seed, purpose, day, ...)``.
That is what makes generation chunk-invariant: a day's transactions depend only on the
world seed and the day, never on how many days were generated before it in the same call.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Purpose(IntEnum):
    """One independent stream per decision; never renumber (it would change every world)."""

    CUSTOMERS = 1
    TERMINALS = 2
    TX_TIMES = 3
    TX_AMOUNTS = 4
    TX_TERMINALS = 5
    COMPROMISED_TERMINALS = 6
    COMPROMISED_CUSTOMERS = 7
    CUSTOMER_FRAUD_PICK = 8
    FEED_DIRT = 9
    FEED_DIRT_DETAIL = 10
    FEED_CHANNEL = 11
    CHARGEBACK_DELAY = 12
    TERMINAL_ATTRIBUTES = 13


def stream(seed: int, purpose: Purpose, *key: int) -> np.random.Generator:
    """A generator for one decision; the same arguments always give the same draws."""
    return np.random.default_rng([seed, int(purpose), *key])
