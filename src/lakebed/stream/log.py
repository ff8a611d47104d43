"""The event log: one interface, an in-process implementation and a Kafka one.

The engine needs four things from a log, and both implementations give all four: keyed
partitions (a card's events stay in order), consumer groups (workers share partitions),
transactions that commit produced records together with the consumer's offsets
(exactly-once effects across a crash), and log compaction (the champion pointer). One
contract test suite runs against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, Self

from lakebed.stream.topics import TopicSpec

if TYPE_CHECKING:
    from lakebed.config import Settings


class Record(NamedTuple):
    """A record as read. A named tuple: the engine makes one per message, and a frozen
    dataclass costs several times as much to build (a ``__setattr__`` per field)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


class LogError(RuntimeError):
    """The log refused an operation (a broker down, a fenced producer, an unknown topic)."""


class Consumer(ABC):
    """Reads records of its group's share of partitions, from the group's committed
    offsets on. Only committed transactions are visible."""

    @abstractmethod
    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` for the first."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the position after every record polled so far (outside a transaction)."""

    @abstractmethod
    def rewind(self) -> None:
        """Go back to the committed offsets, after an aborted transaction."""

    @abstractmethod
    def lag(self) -> int:
        """Records in the assigned partitions not yet polled."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Producer(ABC):
    """Writes records; a transactional producer (created with a ``transactional_id``)
    makes a batch of records and a consumer's offsets visible together, or not at all."""

    @abstractmethod
    def send(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None
    ) -> None: ...

    def send_all(self, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
        """Send ``(topic, key, value)`` records, stamped now: a batch's outputs in one call,
        which an implementation may do with less work per record than ``send``."""
        for topic, key, value in records:
            self.send(topic, key, value)

    @abstractmethod
    def flush(self) -> None:
        """Block until every record sent is acknowledged."""

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def commit(self, consumer: Consumer | None = None) -> None:
        """Commit the open transaction, with ``consumer``'s positions when given."""

    @abstractmethod
    def abort(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class EventLog(ABC):
    # The least time between the starts of two of a worker's transactions that suits this
    # log (the engine gathers records meanwhile): what a transaction costs the log decides it.
    commit_interval_ms: int = 0

    @property
    @abstractmethod
    def log_id(self) -> str:
        """What makes offsets comparable: the same id, the same offsets (Kafka's cluster
        id; a fresh id for each in-process log)."""

    @abstractmethod
    def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet (existing ones are left as they are)."""

    @abstractmethod
    def producer(self, transactional_id: str | None = None) -> Producer: ...

    @abstractmethod
    def consumer(self, group: str, topics: Sequence[str], instance: str | None = None) -> Consumer:
        """A member of ``group`` reading ``topics`` from the group's committed offsets (the
        earliest record when none). ``instance`` names a static member: a restarted worker
        with the same name takes its partitions back at once."""

    @abstractmethod
    def close(self) -> None: ...


def open_log(settings: Settings) -> EventLog:
    """The profile's log: in-process for ``local``, Kafka for ``cluster``."""
    if settings.profile == "cluster":
        from lakebed.stream.kafka_log import KafkaLog

        return KafkaLog(settings.stream.kafka_bootstrap)
    from lakebed.stream.memory_log import MemoryLog

    return MemoryLog()
