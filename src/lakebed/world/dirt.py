"""Dirty data, on purpose: the ways a real feed goes wrong, each at a configured rate.

Each transaction line is, independently, clean or dirty of exactly one kind:
``duplicate`` (the same bytes delivered twice), ``late`` (delivered in a later day's file),
or one of the malformed kinds, which break the line the way upstream systems do. Every
dirty line is recorded in the side manifest, so that the lakehouse's quarantine and
deduplication can be reconciled to the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lakebed.world.spec import DirtyRates, WorldSpec
from lakebed.world.streams import Purpose, stream

DIRTY_KINDS: tuple[str, ...] = tuple(DirtyRates.model_fields)
DUPLICATE, LATE = DIRTY_KINDS.index("duplicate"), DIRTY_KINDS.index("late")
CLEAN = -1

UNKNOWN_CURRENCIES = ("EURO", "ZZZ", "XEU", "E", "€")
REQUIRED_FIELDS = (
    ("transaction_id",),
    ("event_time",),
    ("amount",),
    ("card", "customer_id"),
    ("terminal", "terminal_id"),
)


@dataclass(frozen=True)
class DirtPlan:
    """Per row of one day: the dirty kind (``CLEAN`` or an index into ``DIRTY_KINDS``),
    the delay of a late delivery in days, and a number choosing how a line breaks."""

    kind: npt.NDArray[np.int64]
    late_days: npt.NDArray[np.int64]
    variant: npt.NDArray[np.int64]


def plan_dirt(spec: WorldSpec, day: int, size: int) -> DirtPlan:
    rng = stream(spec.seed, Purpose.FEED_DIRT, day)
    rates = np.array(list(spec.feed.dirty.as_dict().values()))
    kind = np.searchsorted(np.cumsum(rates), rng.random(size), side="right").astype(np.int64)
    kind[kind == len(rates)] = CLEAN
    detail = stream(spec.seed, Purpose.FEED_DIRT_DETAIL, day)
    late_days = detail.integers(1, spec.feed.late_max_days + 1, size)
    variant = detail.integers(0, 2**31 - 1, size)
    return DirtPlan(kind, late_days, variant)


def corrupt(kind: str, line: bytes, variant: int) -> tuple[bytes, str]:
    """The broken line and a note of what was broken, for the manifest."""
    if kind == "truncated_json":
        cut = 1 + variant % (len(line) - 1)
        return line[:cut], f"truncated at byte {cut} of {len(line)}"
    if kind == "invalid_utf8":
        marker = b'"mcc":"'
        return line.replace(marker, marker + b"\xff\xfe", 1), "bytes FF FE in terminal.mcc"

    event: dict[str, Any] = json.loads(line)
    if kind == "wrong_type":
        detail = _wrong_type(event, variant)
    elif kind == "missing_field":
        path = REQUIRED_FIELDS[variant % len(REQUIRED_FIELDS)]
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]
        detail = f"missing {'.'.join(path)}"
    elif kind == "negative_amount":
        value = -(event["amount"]["value"] or 0.01)
        event["amount"]["value"] = value
        detail = f"amount.value {value}"
    elif kind == "unknown_currency":
        code = UNKNOWN_CURRENCIES[variant % len(UNKNOWN_CURRENCIES)]
        event["amount"]["currency"] = code
        detail = f"amount.currency {code!r}"
    else:
        raise ValueError(f"{kind!r} is not a malformed kind")
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode(), detail


def _wrong_type(event: dict[str, Any], variant: int) -> str:
    choice = variant % 4
    if choice == 0:
        value = event["amount"]["value"]
        event["amount"]["value"] = f"{value:.2f}".replace(".", ",")
        return "amount.value is a string with a decimal comma"
    if choice == 1:
        event["card"]["customer_id"] = f"C-{event['card']['customer_id']}"
        return "card.customer_id is not an integer"
    if choice == 2:
        event["event_time"] = 1_500_000_000 + variant % 100_000_000
        return "event_time is a number, not an ISO-8601 string"
    event["terminal"]["terminal_id"] = [event["terminal"]["terminal_id"]]
    return "terminal.terminal_id is a list"
