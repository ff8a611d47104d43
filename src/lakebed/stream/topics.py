"""The engine's topics, declared once for both logs.

Transactions are keyed by card, so one card's events stay in order on one partition and a
consumer group spreads cards over its workers. ``fraud.champion`` is log-compacted: it
keeps the latest champion pointer for ever, so a worker started at any time learns which
model version to score with by reading the topic from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

TRANSACTIONS = "payments.transactions"
CHARGEBACKS = "payments.chargebacks"
SCORED = "payments.scored"
ALERTS = "fraud.alerts"
DEAD_LETTER = "payments.dead-letter"
CHAMPION = "fraud.champion"
CHAMPION_KEY = b"champion"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 4
    compacted: bool = False


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TRANSACTIONS),
    TopicSpec(CHARGEBACKS),
    TopicSpec(SCORED),
    TopicSpec(ALERTS),
    TopicSpec(DEAD_LETTER, partitions=1),
    TopicSpec(CHAMPION, partitions=1, compacted=True),
)
