"""The engine's messages: raw transactions and chargebacks in, scored events, alerts and
dead letters out.

Input is validated message by message with the same pydantic model as ``POST /score``
(the raw feed's shape), so one bad message (not JSON, a missing field, a wrong type, from
whatever client) becomes one dead letter that names what is wrong, and the rest of the
batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from lakebed.fraud.models import Reason
from lakebed.fraud.scoring import Decision, RawTransaction
from lakebed.stream.log import Record
from lakebed.stream.store import Chargebacks, Transactions


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


def parse_transactions(
    records: list[Record],
) -> tuple[list[RawTransaction], list[Record], list[DeadLetter]]:
    """The valid transactions with their records, and a dead letter for each other one."""
    parsed: list[RawTransaction] = []
    kept: list[Record] = []
    dead: list[DeadLetter] = []
    for record in records:
        try:
            if not record.value:
                raise ValueError("message: empty")
            parsed.append(RawTransaction.model_validate_json(record.value))
            kept.append(record)
        except (ValidationError, ValueError) as error:
            dead.append(DeadLetter(record, describe(error)))
    return parsed, kept, dead


def as_batch(transactions: list[RawTransaction]) -> Transactions:
    return Transactions.of(
        [t.transaction_id for t in transactions],
        [int(t.event_time.timestamp()) for t in transactions],
        [t.card.customer_id for t in transactions],
        [t.terminal.terminal_id for t in transactions],
        [t.amount.value for t in transactions],
    )


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


def scored_json(
    transaction: RawTransaction,
    probability: float,
    decision: Decision,
    version: str,
    features: dict[str, float],
) -> bytes:
    """The score with the features it was computed from (feature logging: what the
    model saw, for audits and for training the next model on serving-time values)."""
    return orjson.dumps(
        {
            "transaction_id": transaction.transaction_id,
            "event_time": transaction.event_time.isoformat(),
            "card_id": transaction.card.card_id,
            "customer_id": transaction.card.customer_id,
            "terminal_id": transaction.terminal.terminal_id,
            "amount": transaction.amount.value,
            "currency": transaction.amount.currency,
            "probability": round(probability, 6),
            "decision": decision,
            "model_version": version,
            "features": features,
        }
    )


def alert_json(
    transaction: RawTransaction,
    probability: float,
    decision: Decision,
    version: str,
    reasons: list[Reason],
) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": transaction.transaction_id,
            "event_time": transaction.event_time.isoformat(),
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
