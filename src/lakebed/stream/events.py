"""The engine's messages: raw transactions and chargebacks in, scored events, alerts and
dead letters out.

Input is validated message by message against the same schema as ``POST /score`` (the
raw feed's pydantic model), so one bad message (not JSON, a missing field, a wrong type,
from whatever client) becomes one dead letter that names what is wrong, and the rest of
the batch goes on.

Transactions are first decoded by a msgspec mirror of that model, ~7x cheaper per message
than pydantic (the engine's largest cost per event after the store). The mirror is
at least as strict: whatever it refuses, or any doubt, goes to pydantic, which decides
and words the error; so a message is accepted exactly when ``RawTransaction`` accepts it
(tested on mutated messages).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec
import numpy as np
import orjson
from msgspec import Meta
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from lakebed.fraud.features import FEATURE_NAMES
from lakebed.fraud.models import Reason
from lakebed.fraud.scoring import MAX_ID, Decision, RawTransaction
from lakebed.stream.log import Record
from lakebed.stream.store import Chargebacks, Transactions
from lakebed.world.spec import ISO_4217

_Id = Annotated[int, Meta(ge=0, le=MAX_ID)]
# How far a transaction's time may run ahead of its message's log timestamp (a terminal's
# clock off by some minutes is common; a payment from next year is an error). The stores
# expire history by the latest event time they have seen: one event dated decades ahead,
# valid by the schema, would make every window forget everything before it.
MAX_AHEAD_S = 3_600
_Finite = Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


class _Card(msgspec.Struct, frozen=True, gc=False):
    card_id: Annotated[str, Meta(min_length=1)]
    customer_id: _Id


class _Location(msgspec.Struct, frozen=True, gc=False):
    x: _Finite
    y: _Finite


class _Terminal(msgspec.Struct, frozen=True, gc=False):
    terminal_id: _Id
    mcc: str | None = None
    location: _Location | None = None


class _Money(msgspec.Struct, frozen=True, gc=False):
    value: Annotated[float, Meta(gt=0, le=sys.float_info.max)]
    currency: str


class TransactionEvent(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A valid transaction as the engine keeps it: ``RawTransaction``'s fields, with the
    event time as the message wrote it (ISO 8601 with an offset; checked, not
    reformatted). Untracked by the cyclic collector (``gc=False``): a batch makes
    thousands and none holds a cycle."""

    schema_version: Annotated[int, Meta(ge=1, le=2)] = 1
    # pydantic's pattern is a Rust regex, where ``$`` is the very end; Python's ``$`` also
    # matches before a final newline, hence ``\Z``.
    transaction_id: Annotated[str, Meta(min_length=1, pattern=r"^[^\x00-\x1f]+\Z")]
    event_time: str
    card: _Card
    terminal: _Terminal
    amount: _Money
    channel: str | None = None

    @classmethod
    def of(cls, raw: RawTransaction) -> TransactionEvent:
        location = raw.terminal.location
        return cls(
            schema_version=raw.schema_version,
            transaction_id=raw.transaction_id,
            event_time=raw.event_time.isoformat(),
            card=_Card(raw.card.card_id, raw.card.customer_id),
            terminal=_Terminal(
                raw.terminal.terminal_id,
                raw.terminal.mcc,
                None if location is None else _Location(location.x, location.y),
            ),
            amount=_Money(raw.amount.value, raw.amount.currency),
            channel=raw.channel,
        )


_decode_transaction = msgspec.json.Decoder(TransactionEvent).decode


class RawChargeback(BaseModel):
    """A chargeback as the raw feed carries it; the engine needs two of its fields."""

    model_config = ConfigDict(extra="ignore")

    transaction_id: str = Field(min_length=1)
    reported_at: AwareDatetime


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    error: str

    def to_json(self) -> bytes:
        value = self.record.value or b""
        return orjson.dumps(
            {
                "topic": self.record.topic,
                "partition": self.record.partition,
                "offset": self.record.offset,
                "error": self.error,
                "key": (self.record.key or b"").decode("utf-8", "replace"),
                "value": value.decode("utf-8", "replace"),
            }
        )


def describe(error: ValidationError | ValueError) -> str:
    """The first problem, with the field it is about: ``card.customer_id: Input should
    be a valid integer``."""
    if isinstance(error, ValidationError):
        problems = error.errors(include_url=False)
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return str(error)


@dataclass
class ParsedTransactions:
    """A batch's valid transactions (with their records and event times in epoch
    seconds) and a dead letter for each other message."""

    events: list[TransactionEvent]
    records: list[Record]
    seconds: list[int]
    dead: list[DeadLetter]

    def as_batch(self) -> Transactions:
        events = self.events
        return Transactions.of(
            [e.transaction_id for e in events],
            self.seconds,
            [e.card.customer_id for e in events],
            [e.terminal.terminal_id for e in events],
            [e.amount.value for e in events],
        )


def _decode_fast(value: bytes) -> tuple[TransactionEvent, int] | None:
    """The event and its epoch second when the msgspec mirror and the checks it cannot
    express (the currency list, the time as pydantic reads it) accept it; else None."""
    try:
        event = _decode_transaction(value)
        when = datetime.fromisoformat(event.event_time)
    except (msgspec.DecodeError, ValueError):  # msgspec.ValidationError is a DecodeError
        return None
    if when.tzinfo is None or event.amount.currency not in ISO_4217:
        return None
    return event, int(when.timestamp())


def parse_transactions(records: list[Record]) -> ParsedTransactions:
    """Every message decoded once by the mirror; the rare one it refuses is validated by
    pydantic, which either accepts it or says what is wrong. A transaction dated more
    than ``MAX_AHEAD_S`` after its message was written is refused as well."""
    parsed = ParsedTransactions([], [], [], [])
    for record in records:
        value = record.value
        fast = _decode_fast(value) if value else None
        if fast is None:
            try:
                if not value:
                    raise ValueError("message: empty")
                raw = RawTransaction.model_validate_json(value)
            except (ValidationError, ValueError) as error:
                parsed.dead.append(DeadLetter(record, describe(error)))
                continue
            fast = TransactionEvent.of(raw), int(raw.event_time.timestamp())
        # A log timestamp of 0 or less is unknown (Kafka's -1): nothing to compare with.
        ahead = fast[1] - record.timestamp_ms // 1000
        if record.timestamp_ms > 0 and ahead > MAX_AHEAD_S:
            parsed.dead.append(
                DeadLetter(
                    record,
                    f"event_time: {ahead / 3_600:,.1f} h after the message was written "
                    f"(at most {MAX_AHEAD_S // 3_600} h ahead is accepted)",
                )
            )
            continue
        parsed.events.append(fast[0])
        parsed.records.append(record)
        parsed.seconds.append(fast[1])
    return parsed


def parse_chargebacks(records: list[Record]) -> tuple[Chargebacks, list[DeadLetter]]:
    ids: list[str] = []
    reported: list[int] = []
    dead: list[DeadLetter] = []
    for record in records:
        try:
            if not record.value:
                raise ValueError("message: empty")
            chargeback = RawChargeback.model_validate_json(record.value)
            ids.append(chargeback.transaction_id)
            reported.append(int(chargeback.reported_at.timestamp()))
        except (ValidationError, ValueError) as error:
            dead.append(DeadLetter(record, describe(error)))

    return Chargebacks(ids, np.asarray(reported, dtype=np.int64)), dead


# The features by name, written as a JSON object; a struct built from the row's values
# is ~1 µs an event cheaper than a dict zipped with the names.
FeatureValues = msgspec.defstruct("FeatureValues", [(n, float) for n in FEATURE_NAMES], gc=False)


class ScoredEvent(msgspec.Struct, gc=False):
    """The score with the features it was computed from (feature logging: what the
    model saw, for audits and for training the next model on serving-time values)."""

    transaction_id: str
    event_time: str
    card_id: str
    customer_id: int
    terminal_id: int
    amount: float
    currency: str
    probability: float  # rounded to 6 places
    decision: Decision
    model_version: str
    features: msgspec.Struct  # FeatureValues


# msgspec, not orjson, for the one record written per event: orjson's writer leaves a few
# kilobytes of fresh heap per call when its outputs are kept (as a log keeps them), two
# page faults each, and encoding was 6 µs instead of 2.7 (measured).
_encode = msgspec.json.Encoder().encode


def scored_json(
    transaction: TransactionEvent,
    probability: float,
    decision: Decision,
    version: str,
    features: list[float],
) -> bytes:
    """``probability`` comes rounded to 6 places (the engine rounds a batch at once);
    ``features`` in ``FEATURE_NAMES`` order."""
    return _encode(
        ScoredEvent(
            transaction.transaction_id,
            transaction.event_time,
            transaction.card.card_id,
            transaction.card.customer_id,
            transaction.terminal.terminal_id,
            transaction.amount.value,
            transaction.amount.currency,
            probability,
            decision,
            version,
            FeatureValues(*features),
        )
    )


def alert_json(
    transaction: TransactionEvent,
    probability: float,
    decision: Decision,
    version: str,
    reasons: list[Reason],
) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": transaction.transaction_id,
            "event_time": transaction.event_time,
            "card_id": transaction.card.card_id,
            "terminal_id": transaction.terminal.terminal_id,
            "amount": transaction.amount.value,
            "probability": round(probability, 6),
            "decision": decision,
            "model_version": version,
            "reasons": [
                {
                    "feature": r.feature,
                    "value": r.value,
                    "typical": r.typical,
                    "contribution": round(r.contribution, 6),
                }
                for r in reasons
            ],
        }
    )
