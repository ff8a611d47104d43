"""The engine's fast message decoder accepts exactly what the raw feed's pydantic model
accepts, with the same values: on the simulator's feed (dirty lines included) and on
messages broken one field at a time."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from lakebed.fraud.scoring import RawTransaction
from lakebed.stream.events import (
    MAX_AHEAD_S,
    ScoredEvent,
    TransactionEvent,
    _decode_fast,
    parse_transactions,
    scored_json,
)
from lakebed.stream.log import Record
from lakebed.stream.replay import feed_messages
from lakebed.stream.topics import TRANSACTIONS
from tests.conftest import Lakehouse

VALID: dict[str, Any] = {
    "schema_version": 2,
    "transaction_id": "tx_0001",
    "event_time": "2018-09-24T02:02:44+02:00",
    "card": {"card_id": "card_1", "customer_id": 1430},
    "terminal": {"terminal_id": 8677, "mcc": "5411", "location": {"x": 64.9, "y": 33.01}},
    "amount": {"value": 9.24, "currency": "EUR"},
    "channel": "contactless",
}
ODD_VALUES: list[Any] = [
    None,
    "",
    "7",
    "x\n",
    "a\u0001b",
    0,
    -1,
    1,
    3,
    2**63 - 1,
    2**63,
    2**64,
    1.0,
    1.5,
    -2.5,
    True,
    [],
    {},
    "EUR",
    "eur",
    "XXX",
    "2018-09-24T02:02:44",
    "2018-09-24T02:02:44Z",
    "2018-09-24 02:02:44+00:00",
    "2018-09-24",
    "2018-02-30T00:00:00+00:00",
    "20180924T020244+0200",
]
FIELDS = [
    ("schema_version",),
    ("transaction_id",),
    ("event_time",),
    ("card",),
    ("card", "card_id"),
    ("card", "customer_id"),
    ("terminal", "terminal_id"),
    ("terminal", "mcc"),
    ("terminal", "location"),
    ("terminal", "location", "x"),
    ("amount", "value"),
    ("amount", "currency"),
    ("channel",),
]
MISSING = object()


def mutated(path: tuple[str, ...], value: Any) -> bytes:
    message = copy.deepcopy(VALID)
    parent = message
    for part in path[:-1]:
        parent = parent[part]
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(message).encode()  # the standard library writes any integer


def raw_cases() -> list[bytes]:
    cases = [mutated(path, value) for path in FIELDS for value in [*ODD_VALUES, MISSING]]
    text = orjson.dumps(VALID).decode()
    cases += [
        b"",
        b"not json",
        text[:-1].encode(),  # truncated
        text.replace('"tx_0001"', '"tx_0001","transaction_id":"tx_0002"').encode(),  # twice
        text.replace('"value":9.24', '"value":1e400').encode(),  # not finite
        text.replace('"x":64.9', '"x":-1e999').encode(),
        text.replace('"channel"', '"extra":[1,2],"channel"').encode(),  # ignored
        b"[1, 2, 3]",
        b"null",
    ]
    return cases


def pydantic_verdict(value: bytes) -> tuple[TransactionEvent, int] | None:
    try:
        raw = RawTransaction.model_validate_json(value)
    except (ValidationError, ValueError):
        return None
    return TransactionEvent.of(raw), int(raw.event_time.timestamp())


def same_event(fast: TransactionEvent, slow: TransactionEvent) -> bool:
    """Equal fields; the time as an instant (the fast path keeps the message's text)."""
    return fast.__replace__(event_time=slow.event_time) == slow and datetime.fromisoformat(
        fast.event_time
    ) == datetime.fromisoformat(slow.event_time)


@pytest.mark.parametrize("value", raw_cases())
def test_the_fast_decoder_never_accepts_what_pydantic_refuses(value: bytes) -> None:
    fast = _decode_fast(value) if value else None
    slow = pydantic_verdict(value)
    if fast is not None:
        assert slow is not None, "the fast path accepted a message pydantic refuses"
        assert fast[1] == slow[1]
        assert same_event(fast[0], slow[0])
    # whichever path decides, the batch agrees with pydantic
    parsed = parse_transactions([Record(TRANSACTIONS, 0, 0, b"k", value, 0)])
    assert (len(parsed.events), len(parsed.dead)) == ((1, 0) if slow else (0, 1))
    if slow is not None:
        assert parsed.seconds == [slow[1]]
        assert same_event(parsed.events[0], slow[0])


@pytest.mark.parametrize("ahead_s", [-86_400 * 3_000, 0, 3_599, 3_601, 86_400 * 2_000])
def test_a_transaction_far_ahead_of_its_message_is_a_dead_letter(ahead_s: int) -> None:
    written = datetime.fromisoformat(VALID["event_time"]) - timedelta(seconds=ahead_s)
    stamp_ms = round(written.timestamp() * 1000)
    parsed = parse_transactions([Record(TRANSACTIONS, 0, 0, b"k", orjson.dumps(VALID), stamp_ms)])
    if ahead_s <= MAX_AHEAD_S:
        assert len(parsed.events) == 1
        assert not parsed.dead
    else:
        assert not parsed.events
        assert parsed.dead[0].error.startswith("event_time: "), parsed.dead[0].error
        assert "after the message was written" in parsed.dead[0].error


def test_the_feed_takes_the_fast_path_and_agrees_with_pydantic(lakehouse: Lakehouse) -> None:
    first = lakehouse.settings.world.start_date + timedelta(days=30)
    values = [
        m[2]
        for m in feed_messages(lakehouse.settings.data_home, first, first + timedelta(days=2))
        if m[0] == TRANSACTIONS
    ]
    fast = [_decode_fast(v) if v else None for v in values]
    slow = [pydantic_verdict(v) for v in values]
    valid = sum(s is not None for s in slow)
    assert valid > 500
    assert valid < len(values), "the feed should hold dirty lines too"
    assert sum(f is not None for f in fast) == valid  # every valid line goes fast
    for one, other in zip(fast, slow, strict=True):
        assert (one is None) == (other is None)
        if one is not None and other is not None:
            assert one[1] == other[1]
            assert same_event(one[0], other[0])


def test_the_scored_record_names_every_feature() -> None:
    from lakebed.fraud.features import FEATURE_NAMES

    event = _decode_fast(orjson.dumps(VALID))
    assert event is not None
    values = [float(i) + 0.25 for i in range(len(FEATURE_NAMES))]
    record = orjson.loads(scored_json(event[0], 0.123457, "review", "7", values))
    assert record["features"] == dict(zip(FEATURE_NAMES, values, strict=True))
    assert record["event_time"] == VALID["event_time"]
    assert record["probability"] == 0.123457
    assert record["decision"] == "review"
    assert set(record) == set(ScoredEvent.__struct_fields__)
