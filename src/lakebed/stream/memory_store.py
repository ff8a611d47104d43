"""The in-process feature store (local profile): sorted NumPy arrays, vectorised per batch.

Each entity's events sit in one sorted int64 array of keys ``code << 33 | second + 2**32``
(``code`` a dense number per customer or terminal, so any 64-bit id fits; the bias keeps a
window's first second positive even before 1970), so a window of any entity is two binary
searches, and amounts in a prefix sum beside it, so its total is one subtraction. A batch
is merged in with one insert; events older than the longest window (plus its delay) are
dropped from time to time. Exact at the second, like the offline SQL's ``RANGE`` frames,
and no history is rescanned per event.

Latency: the periodic work (merging the runs of ``_Events``, expiry) is linear
merges and masks over arrays that are already sorted, never a sort of the whole history:
a re-sort of a month of events (~400k) stalled the batch in hand for tens of milliseconds,
and that stall was the in-process engine's p99. What is left of it is spread out: the
customers' runs, the terminals' and the frauds are compacted by turns (all three and the
ids' expiry at once took ~21 ms, measured), the large merges on a background thread
(NumPy lets go of the GIL for them, so a batch no longer waits 3 to 10 ms for one), and
the seen transaction ids expire a batch's worth at a time, as they were added.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from lakebed.fraud.features import FEATURE_NAMES, Entity, WindowFeature, features_of
from lakebed.fraud.history import instant_arrays
from lakebed.stream.store import (
    DAY,
    RETENTION_DAYS,
    Chargebacks,
    FeatureStore,
    Floats,
    Int64s,
    Transactions,
    mean_amount,
    risk_share,
)

SHIFT = 33  # the bits of a key's second; the entity's code sits above them
BIAS = 1 << 32  # added to every second: 1833-11 to 2106-02 fit in SHIFT bits
SECONDS = (1 << SHIFT) - 1
MAX_CODE = (1 << 30) - 1  # codes above SHIFT bits must leave the sign bit alone
# An LSM tree of three sorted runs: a batch is merged into the small run (a few thousand
# events, so a batch costs microseconds), the small run into the middle one when it
# holds SMALL_RUN events, and the middle run into the large one every COMPACT_EVERY
# events, when expired events and ids are dropped as well: linear work over a month of
# events, a few milliseconds, rare enough to stay out of the 99th latency percentile.
# The three compactions (customers, terminals, frauds) take turns, one every third of it.
SMALL_RUN = 2_000
COMPACT_EVERY = 50_000


def _keys(codes: Int64s, seconds: Int64s) -> Int64s:
    return (codes << SHIFT) | (seconds + BIAS)


class _Codes:
    """Dense codes for entity ids: ids are any 64-bit integer, and a key has 30 bits for
    the entity. A dict lookup per event (~0.1 µs) is all it costs."""

    def __init__(self) -> None:
        self._code: dict[int, int] = {}

    def __call__(self, ids: Int64s) -> Int64s:
        code = self._code
        codes = np.fromiter(
            (code.setdefault(entity, len(code)) for entity in ids.tolist()), np.int64, len(ids)
        )
        if len(code) > MAX_CODE:
            raise OverflowError(f"more than {MAX_CODE:,} distinct entities in one store")
        return codes


class _Sorted:
    """Sorted keys with a prefix sum of cents beside them."""

    def __init__(self, keys: Int64s, cents: Int64s) -> None:
        self.keys = keys
        self.cents = cents

    @cached_property
    def prefix(self) -> Int64s:
        """Made on the first read only: most runs are merged away unread (a batch into the
        small run, the expiry-masked large run and the merged smaller ones in a
        compaction), and a month's prefix sum is a pass over ~400k values."""
        prefix: Int64s = np.empty(len(self.cents) + 1, dtype=np.int64)
        prefix[0] = 0
        np.cumsum(self.cents, out=prefix[1:])  # not ``np.r_``: ~14 µs a call in Python
        return prefix

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, keys: Int64s, cents: Int64s) -> _Sorted:
        """From keys in any order."""
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], cents[order])

    def merged(self, other: _Sorted) -> _Sorted:
        """Both runs in one, in linear time (no sort): each of ``other``'s keys goes after
        the keys of this run that are not greater."""
        if not len(other.keys):
            return self
        if not len(self.keys):
            return other
        size = len(self.keys) + len(other.keys)
        slots = np.searchsorted(self.keys, other.keys, side="right") + np.arange(len(other.keys))
        mine = np.ones(size, dtype=bool)
        mine[slots] = False
        keys = np.empty(size, dtype=np.int64)
        cents = np.empty(size, dtype=np.int64)
        keys[slots], cents[slots] = other.keys, other.cents
        keys[mine], cents[mine] = self.keys, self.cents
        return _Sorted(keys, cents)

    def window(self, low: Int64s, high: Int64s) -> tuple[Int64s, Int64s]:
        """Count and cent total per window; the bounds come in ascending order, so each
        binary search starts where the previous one ended (NumPy does this for sorted
        needles) and walks the array forward instead of jumping around it."""
        start = np.searchsorted(self.keys, low, side="left")
        stop = np.searchsorted(self.keys, high, side="right")
        return (stop - start).astype(np.int64), self.prefix[stop] - self.prefix[start]


EMPTY = np.empty(0, dtype=np.int64)


def _compacted(base: _Sorted, rest: _Sorted, oldest: int) -> _Sorted:
    """``base`` without the events before second ``oldest``, and ``rest`` merged in; its
    prefix sum made here too, so that the batch that first reads it does not pay."""
    keep = (base.keys & SECONDS) >= oldest + BIAS
    merged = _Sorted(base.keys[keep], base.cents[keep]).merged(rest)
    _ = merged.prefix
    return merged


class _Events:
    """(entity, second) keys with amounts in cents, in the three runs of an LSM tree (see
    ``SMALL_RUN``): a batch costs a merge into the small run, not a copy of everything.

    With a ``compactor``, the large merge runs there: the smaller runs are set aside as a
    fourth, ``frozen``, run until the new large one replaces both. Every event is in
    exactly one run meanwhile, so windows stay exact at any moment; only expired events
    (which no window reaches) stay a little longer."""

    def __init__(self, compactor: ThreadPoolExecutor | None = None) -> None:
        self.base = _Sorted(EMPTY, EMPTY)
        self.frozen = _Sorted(EMPTY, EMPTY)
        self.middle = _Sorted(EMPTY, EMPTY)
        self.small = _Sorted(EMPTY, EMPTY)
        self._compactor = compactor
        self._compacting: Future[_Sorted] | None = None

    def __len__(self) -> int:
        return len(self.base) + len(self.frozen) + len(self.middle) + len(self.small)

    def settle(self, wait: bool = False) -> None:
        """Take the new large run once its compaction is done (or wait for it)."""
        if self._compacting is not None and (wait or self._compacting.done()):
            self.base = self._compacting.result()
            self.frozen = _Sorted(EMPTY, EMPTY)
            self._compacting = None

    def add(self, keys: Int64s, cents: Int64s) -> None:
        self.small = self.small.merged(_Sorted.of(keys, cents))
        if len(self.small) >= SMALL_RUN:
            self.middle = self.middle.merged(self.small)
            self.small = _Sorted(EMPTY, EMPTY)

    def window(self, low: Int64s, high: Int64s) -> tuple[Int64s, Int64s]:
        """Count and cent total of the events with ``low <= key <= high``."""
        order = np.argsort(low, kind="stable")
        low, high = low[order], high[order]
        count, cents = self.base.window(low, high)
        for run in (self.frozen, self.middle, self.small):
            if len(run):
                more, extra = run.window(low, high)
                count, cents = count + more, cents + extra
        out_count, out_cents = np.empty_like(count), np.empty_like(cents)
        out_count[order], out_cents[order] = count, cents
        return out_count, out_cents

    def compact(self, oldest: int) -> None:
        """Merge the smaller runs into the large one, dropping events before second
        ``oldest`` (every entity's); a mask keeps the order, so nothing is sorted. A
        compaction still running finishes first (they are 50k events apart)."""
        self.settle(wait=True)
        rest = self.middle.merged(self.small)
        self.middle = self.small = _Sorted(EMPTY, EMPTY)
        if self._compactor is None:
            self.base = _compacted(self.base, rest, oldest)
        else:
            self.frozen = rest
            self._compacting = self._compactor.submit(_compacted, self.base, rest, oldest)


class MemoryStore(FeatureStore):
    def __init__(self, background: bool = True) -> None:
        """With ``background``, the large merges run on a thread of their own."""
        self._compactor = (
            ThreadPoolExecutor(1, thread_name_prefix="lakebed-compaction") if background else None
        )
        self.clear()

    def clear(self) -> None:
        self._customers = _Events(self._compactor)
        self._terminals = _Events(self._compactor)
        self._customer_codes = _Codes()
        self._terminal_codes = _Codes()
        # transaction -> its terminal's key (code and second): an int, which the cyclic
        # garbage collector does not track, where a tuple per event was one more object
        self._seen: dict[str, int] = {}
        # the ids in the order they were seen, a batch's at a time with its latest second:
        # they expire from the front as time passes (a dict pops from its front slowly)
        self._seen_order: deque[tuple[int, list[str]]] = deque()
        self._waiting: dict[str, int] = {}  # chargebacks ahead of their transaction
        self._frauds: dict[str, tuple[int, int, int]] = {}  # -> (terminal, second, reported)
        self._fraud_keys: Int64s = np.empty(0, dtype=np.int64)
        self._fraud_reported: Int64s = np.empty(0, dtype=np.int64)
        self._fraud_index_stale = False  # the index is rebuilt, not merged into
        self._new_frauds: list[tuple[int, int, int]] = []  # to merge into the index
        self._since_compaction = 0
        self._compactions = 0
        self._latest = 0

    def close(self) -> None:
        """Wait for a compaction in flight and stop its thread."""
        if self._compactor is not None:
            self._compactor.shutdown(wait=True)

    def held(self) -> int:
        """Customer events in memory once compactions in flight are done: bounded by the
        retention, whatever the history."""
        self._customers.settle(wait=True)
        return len(self._customers)

    def remembered(self) -> int:
        """Transaction ids and waiting chargebacks in memory: bounded like ``held``."""
        return len(self._seen) + len(self._waiting)

    def update(self, batch: Transactions) -> Floats:
        """Every window of a batch in one search of each run per entity: the bounds of all
        its windows for all rows are one array of needles, and the answers go straight
        into their columns of the feature matrix (``assemble``'s arithmetic, shared;
        a batch of a dozen events costs a few dozen NumPy calls, not a few per window)."""
        rows = len(batch)
        out = np.empty((rows, len(FEATURE_NAMES)), dtype=np.float64)
        if not rows:
            return out
        self._customers.settle()
        self._terminals.settle()
        customers = self._customer_codes(batch.customers)
        terminals = self._terminal_codes(batch.terminals)
        self._record(batch, customers, terminals)
        out[:, _AMOUNT] = batch.cents / 100.0
        for name, values in instant_arrays(batch.seconds).items():
            out[:, _COLUMN[name]] = values
        self._fill(out, _CUSTOMER, self._customers, customers, batch.seconds)
        self._fill(out, _TERMINAL, self._terminals, terminals, batch.seconds)
        return out

    def _fill(
        self, out: Floats, plan: _Plan, events: _Events, ids: Int64s, seconds: Int64s
    ) -> None:
        rows = len(ids)
        shifted = (ids << SHIFT)[None, :]
        biased = (seconds + BIAS)[None, :]
        low = (shifted | (biased - plan.before[:, None])).ravel()
        high = (shifted | (biased - plan.delay[:, None])).ravel()
        counted, cents = events.window(low, high)
        count = counted.reshape(-1, rows).astype(np.float64)
        total = cents.reshape(-1, rows).astype(np.float64)
        columns, spans = plan.counts
        out[:, columns] = count[spans].T
        columns, spans = plan.means
        if len(columns):
            out[:, columns] = mean_amount(total[spans], count[spans]).T
        columns, spans = plan.risks
        if len(columns):
            risks = len(columns)
            known = self._known_frauds(
                np.tile(ids, risks),
                np.tile(seconds, risks),
                (seconds[None, :] - plan.risk_before[:, None]).ravel(),
                (seconds[None, :] - plan.risk_delay[:, None]).ravel(),
            )
            frauds = known.reshape(risks, rows).astype(np.float64)
            out[:, columns] = risk_share(frauds, count[spans]).T

    def _record(self, batch: Transactions, customers: Int64s, terminals: Int64s) -> None:
        new: list[int] = []
        ids: list[str] = []
        for row, transaction in enumerate(batch.transaction_ids):
            if transaction not in self._seen:
                terminal, second = int(terminals[row]), int(batch.seconds[row])
                self._seen[transaction] = terminal << SHIFT | second + BIAS
                new.append(row)
                ids.append(transaction)
                reported = self._waiting.pop(transaction, None)
                if reported is not None:
                    self._frauds[transaction] = (terminal, second, reported)
                    self._new_frauds.append((terminal, second, reported))
        if not new:
            return
        rows = np.asarray(new, dtype=np.intp)
        seconds = batch.seconds[rows]
        self._customers.add(_keys(customers[rows], seconds), batch.cents[rows])
        self._terminals.add(_keys(terminals[rows], seconds), np.zeros(len(rows), np.int64))
        latest = int(seconds.max())
        self._latest = max(self._latest, latest)
        self._seen_order.append((latest, ids))
        self._forget_seen(self._latest - RETENTION_DAYS * DAY)
        self._since_compaction += len(rows)
        if self._since_compaction >= COMPACT_EVERY // 3:
            self._compact()
        self._index_frauds()

    def _forget_seen(self, oldest: int) -> None:
        """Forget the ids of the batches whose events are all before ``oldest``: no
        window reaches them, and a replay of one that old changes no feature. A late event
        in a later batch stays until that batch goes, which only keeps it longer."""
        order, seen = self._seen_order, self._seen
        while order and order[0][0] < oldest:
            for transaction in order.popleft()[1]:
                seen.pop(transaction, None)

    def record_chargebacks(self, chargebacks: Chargebacks) -> None:
        for transaction, reported in zip(
            chargebacks.transaction_ids, chargebacks.reported_seconds.tolist(), strict=True
        ):
            known = self._frauds.get(transaction)
            if known is not None:
                if reported < known[2]:  # the first report is when the label became known
                    self._frauds[transaction] = (known[0], known[1], reported)
                    self._fraud_index_stale = True
                continue
            seen = self._seen.get(transaction)
            if seen is None:
                self._waiting[transaction] = min(reported, self._waiting.get(transaction, reported))
            else:
                fraud = (seen >> SHIFT, (seen & SECONDS) - BIAS, reported)
                self._frauds[transaction] = fraud
                self._new_frauds.append(fraud)
        self._index_frauds()

    def _index_frauds(self) -> None:
        """New frauds are merged into the sorted index (a few microseconds); it is built
        again from all frauds only when one changed or expired (~1 ms for a few thousand,
        which every chargeback cost when it was the only way)."""
        if self._fraud_index_stale:
            self._fraud_index_stale = False
            self._new_frauds.clear()
            self._fraud_keys, self._fraud_reported = _by_key(list(self._frauds.values()))
        elif self._new_frauds:
            keys, reported = _by_key(self._new_frauds)
            self._new_frauds.clear()
            slots = np.searchsorted(self._fraud_keys, keys, side="right")
            self._fraud_keys = np.insert(self._fraud_keys, slots, keys)
            self._fraud_reported = np.insert(self._fraud_reported, slots, reported)

    def _known_frauds(
        self, terminals: Int64s, seconds: Int64s, low: Int64s, high: Int64s
    ) -> Int64s:
        """Frauds in each row's window whose chargeback was reported before the row."""
        start = np.searchsorted(self._fraud_keys, _keys(terminals, low), side="left")
        stop = np.searchsorted(self._fraud_keys, _keys(terminals, high), side="right")
        lengths = stop - start
        if not lengths.sum():
            return np.zeros(len(terminals), dtype=np.int64)
        rows = np.repeat(np.arange(len(terminals)), lengths)
        # each row's frauds, start[row] .. stop[row] - 1, one after the other, no Python loop
        ends = np.cumsum(lengths)
        positions = np.arange(ends[-1]) + np.repeat(start - (ends - lengths), lengths)
        known = self._fraud_reported[positions] < seconds[rows]
        return np.bincount(rows[known], minlength=len(terminals)).astype(np.int64)

    def _compact(self) -> None:
        """One of the three compactions, in turn: the customers' runs, the terminals',
        or the frauds and waiting chargebacks that no window reaches any more."""
        oldest = self._latest - RETENTION_DAYS * DAY
        turn = self._compactions % 3
        if turn == 0:
            self._customers.compact(oldest)
        elif turn == 1:
            self._terminals.compact(oldest)
        else:
            frauds = len(self._frauds)
            self._frauds = {t: v for t, v in self._frauds.items() if v[1] >= oldest}
            if len(self._frauds) < frauds:
                self._fraud_index_stale = True
            # a chargeback reported before then is of a transaction older still
            self._waiting = {t: r for t, r in self._waiting.items() if r >= oldest}
        self._compactions += 1
        self._since_compaction = 0


def _by_key(frauds: list[tuple[int, int, int]]) -> tuple[Int64s, Int64s]:
    """(terminal, second, reported) frauds as sorted keys and their report seconds."""
    entries = np.array(frauds, dtype=np.int64).reshape(-1, 3)
    keys = _keys(entries[:, 0], entries[:, 1])
    order = np.argsort(keys, kind="stable")
    return keys[order], entries[order, 2]


_COLUMN = {name: column for column, name in enumerate(FEATURE_NAMES)}
_AMOUNT = _COLUMN["amount"]
Columns = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]  # feature columns, their spans


@dataclass(frozen=True)
class _Plan:
    """An entity's window features resolved once to arrays: its distinct spans (a count
    and a mean over one window share a search) as seconds before the event, and for each
    feature its column in the matrix and the span (or risk window) that answers it."""

    before: Int64s  # a span's first second: (window + delay) days before the event
    delay: Int64s  # its last second: delay days before
    counts: Columns
    means: Columns
    risk_before: Int64s
    risk_delay: Int64s
    risks: Columns  # the columns, and the span of the transactions each risk divides by

    @classmethod
    def of(cls, entity: Entity) -> _Plan:
        features = features_of(entity)
        spans = list(dict.fromkeys((f.window_days, f.delay_days) for f in features if not _risk(f)))
        risks = [f for f in features if _risk(f)]

        def columns(chosen: list[WindowFeature], span_of: list[int]) -> Columns:
            return (
                np.array([_COLUMN[f.name] for f in chosen], dtype=np.intp),
                np.array(span_of, dtype=np.intp),
            )

        def span(feature: WindowFeature) -> int:
            return spans.index((feature.window_days, feature.delay_days))

        counts = [f for f in features if f.aggregation == "count"]
        means = [f for f in features if f.aggregation == "mean_amount"]
        return cls(
            before=np.array([(w + d) * DAY for w, d in spans], dtype=np.int64),
            delay=np.array([d * DAY for _, d in spans], dtype=np.int64),
            counts=columns(counts, [span(f) for f in counts]),
            means=columns(means, [span(f) for f in means]),
            risk_before=np.array([(f.window_days + f.delay_days) * DAY for f in risks], np.int64),
            risk_delay=np.array([f.delay_days * DAY for f in risks], dtype=np.int64),
            risks=columns(risks, [span(f.counted()) for f in risks]),
        )


def _risk(feature: WindowFeature) -> bool:
    return feature.aggregation == "fraud_share"


_CUSTOMER = _Plan.of("customer")
_TERMINAL = _Plan.of("terminal")
