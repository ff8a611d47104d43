"""The Redis feature store (cluster profile): a packed log per customer, sorted sets per
terminal, in Lua.

A customer's recent events sit in one string, 16 bytes each (second, cents). A batch's
script reads each of its customers' logs once, appends the new events and writes it back
(one ``GET`` and one ``SET`` a customer), and returns the logs; the client counts and sums
every customer window, exactly to the second, with NumPy over the whole batch. Counting in
Lua (a loop over each event's log, and a number formatted per answer) was over half of
Redis's time, and Redis is one core for every worker: moving it out took the script from
~60 to ~34 µs an event (measured, the same feed, old and new alternated). A log is linear
in a customer's events within the retention (~75 on the default world), which people's
spending keeps small. Terminals, which can be very busy, keep a sorted set (score: the
event second) that answers each window with one ``ZCOUNT`` in logarithmic time. Frauds per
terminal sit in a sorted set by event time with their report times beside them, and a set
names the terminals that have any, so a batch asks once which of its terminals to look at.

A batch (up to 1,000 events) is one ``EVALSHA``: one round trip, and atomic, so a worker
killed mid-batch leaves all of its updates or none. ``SET NX`` on the transaction id makes
each update idempotent. Events older than the longest window are trimmed as entities are
touched, and every key expires after the retention period of wall-clock time as well, so
idle customers and terminals do not stay for ever. Chargebacks waiting for their
transaction sit in one hash, dropped once they are older than any window reaches.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import redis

from lakebed.fraud.features import WINDOW_FEATURES
from lakebed.stream.store import (
    DAY,
    RETENTION_DAYS,
    Chargebacks,
    FeatureStore,
    Floats,
    Int64s,
    Transactions,
    assemble,
)

_COMMON = """
local P = KEYS[1]
local RETAIN = tonumber(ARGV[1])
local TTL = RETAIN

local function add_fraud(terminal, second, id, reported)
  local reports = P .. 't:' .. terminal .. ':r'
  local current = redis.call('HGET', reports, id)
  if current and tonumber(current) <= reported then return end
  redis.call('HSET', reports, id, reported)
  redis.call('ZADD', P .. 't:' .. terminal .. ':f', second, id)
  redis.call('EXPIRE', reports, TTL)
  redis.call('EXPIRE', P .. 't:' .. terminal .. ':f', TTL)
  -- the terminals that may have frauds: a batch asks once which of its terminals are
  -- here, instead of a range read per event (most terminals never see a fraud)
  redis.call('SADD', P .. 'tf', terminal)
  redis.call('EXPIRE', P .. 'tf', TTL)
end
"""

_UPDATE = (
    _COMMON
    + """
local spec = cjson.decode(ARGV[2])

-- A customer's recent events, packed: 16 bytes each (second, cents), in arrival order.
local PACKED = '<i8i8'
local CHUNK = 200  -- events per struct.unpack call (Lua's stack holds ~8,000 results)
local TRIM_EVENTS = 32

-- Only those a window can still reach (from ``oldest`` on), packed again.
local function trimmed(blob, oldest)
  local kept = {}
  local n = #blob / 16
  for first = 0, n - 1, CHUNK do
    local m = math.min(CHUNK, n - first)
    local values = {struct.unpack(
      '<' .. string.rep('i8', 2 * m), string.sub(blob, first * 16 + 1, (first + m) * 16))}
    for i = 1, 2 * m, 2 do
      if values[i] >= oldest then
        kept[#kept + 1] = struct.pack(PACKED, values[i], values[i + 1])
      end
    end
  end
  return table.concat(kept)
end

-- The batch comes packed in one argument (fields split by \\31, events by \\30): one
-- string to send and to parse, instead of five arguments per event. Seconds stay strings
-- as well as numbers: Redis 7.0 formats a number argument with printf's %.17g, which was
-- a sixth of the script's time when every second went as a number.
local events = {}
local latest = 0
for id, second, customer, terminal, cents in
    string.gmatch(ARGV[3], '([^\\31\\30]+)\\31(%d+)\\31(%d+)\\31(%d+)\\31(%-?%d+)') do
  local at = tonumber(second)
  events[#events + 1] = {id, at, customer, terminal, tonumber(cents), second}
  if at > latest then latest = at end
end

-- Chargebacks that came before their transaction, in one hash: one look a batch (it is
-- almost always empty) instead of one per event. Those reported before anything a window
-- can reach are dropped here.
local waiting = {}
if redis.call('HLEN', P .. 'cb') > 0 then
  local flat = redis.call('HGETALL', P .. 'cb')
  for i = 1, #flat, 2 do
    local reported = tonumber(flat[i + 1])
    if reported < latest - RETAIN then
      redis.call('HDEL', P .. 'cb', flat[i])
    else
      waiting[flat[i]] = reported
    end
  end
end

-- Record the new events (``SET NX`` on the id), gathered per customer and per terminal:
-- each is written once a batch, not once an event.
local appended, added, customers, terminals = {}, {}, {}, {}
for _, e in ipairs(events) do
  local id, second, customer, terminal, cents = e[1], e[2], e[3], e[4], e[5]
  if not appended[customer] then
    appended[customer] = {}
    customers[#customers + 1] = customer
  end
  if redis.call('SET', P .. 'tx:' .. id, terminal .. ':' .. e[6], 'NX', 'EX', TTL) then
    local packs = appended[customer]
    packs[#packs + 1] = struct.pack(PACKED, second, cents)
    local members = added[terminal]
    if not members then
      members = {}
      added[terminal] = members
      terminals[#terminals + 1] = terminal
    end
    members[#members + 1] = e[6]
    members[#members + 1] = id
    local reported = waiting[id]
    if reported then
      add_fraud(terminal, second, id, reported)
      redis.call('HDEL', P .. 'cb', id)
      waiting[id] = nil
    end
  end
end

-- A customer's log is read, extended and written back whole (a ``SET`` with the expiry,
-- where an ``APPEND`` and an ``EXPIRE`` per event were two calls), and returned: the
-- client counts and sums its windows (NumPy over the whole batch, where a loop in Lua over
-- every event's log was most of the script's time). What fell out of every window is
-- dropped whenever the log passes a power of two events: a trimmed log grows back to the
-- same mark, so it holds the retention's events plus a little (at most twice as many),
-- and a trim's cost is shared by the appends since.
local logs, sizes = {}, {}
for i, customer in ipairs(customers) do
  local key = P .. 'c:' .. customer .. ':l'
  local old = redis.call('GET', key) or ''
  local blob = old
  if #appended[customer] > 0 then
    blob = old .. table.concat(appended[customer])
    local mark = TRIM_EVENTS
    while mark <= #old / 16 do mark = mark * 2 end
    if #blob / 16 >= mark then blob = trimmed(blob, latest - RETAIN) end
    redis.call('SET', key, blob, 'EX', TTL)
  end
  logs[i] = blob
  sizes[i] = struct.pack('<i4', #blob / 16)
end

-- A terminal's events in a sorted set (score: the second), so each window is one
-- ``ZCOUNT`` however busy it is; trimmed, as before, on about one write in 97.
for _, terminal in ipairs(terminals) do
  local edges = P .. 't:' .. terminal .. ':e'
  local members = added[terminal]
  redis.call('ZADD', edges, unpack(members))
  redis.call('EXPIRE', edges, TTL)
  for i = 1, #members, 2 do
    local second = tonumber(members[i])
    if math.fmod(second, 97) == 0 then
      redis.call('ZREMRANGEBYSCORE', edges, '-inf', string.format('(%d', second - RETAIN))
      break
    end
  end
end

-- The terminal windows: (low, high) offsets of the counts, and the widest span of the
-- risk windows (one range read of a terminal's frauds answers them all).
local COUNTED, RISKS = {}, {}
local RISK_LOW, RISK_HIGH = 0, nil
for _, f in ipairs(spec) do
  if f[1] == 't' and f[2] == 'count' then COUNTED[#COUNTED + 1] = {f[3], f[4]} end
  if f[2] == 'risk' then
    RISKS[#RISKS + 1] = {f[3], f[4]}
    RISK_LOW = math.max(RISK_LOW, f[3])
    RISK_HIGH = math.min(RISK_HIGH or f[4], f[4])
  end
end

local function frauds_known(terminal, second)
  local found = redis.call(
    'ZRANGEBYSCORE', P .. 't:' .. terminal .. ':f',
    string.format('%d', second - RISK_LOW), string.format('%d', second - RISK_HIGH),
    'WITHSCORES')
  local known = {}
  if #found == 0 then return known end
  local ids = {}
  for i = 1, #found, 2 do ids[#ids + 1] = found[i] end
  local reports = redis.call('HMGET', P .. 't:' .. terminal .. ':r', unpack(ids))
  for i, reported in ipairs(reports) do
    if reported and tonumber(reported) < second then
      known[#known + 1] = tonumber(found[2 * i])
    end
  end
  return known
end

-- Which of the batch's terminals may have frauds, in one call; a terminal whose frauds
-- have all expired leaves the set here.
local with_frauds = {}
if redis.call('EXISTS', P .. 'tf') == 1 then
  local distinct, seen = {}, {}
  for _, e in ipairs(events) do
    if not seen[e[4]] then
      seen[e[4]] = true
      distinct[#distinct + 1] = e[4]
    end
  end
  local present = redis.call('SMISMEMBER', P .. 'tf', unpack(distinct))
  for i, terminal in ipairs(distinct) do
    if present[i] == 1 then
      if redis.call('EXISTS', P .. 't:' .. terminal .. ':f') == 1 then
        with_frauds[terminal] = true
      else
        redis.call('SREM', P .. 'tf', terminal)
      end
    end
  end
end

-- Per event: its terminal's counts, then its known frauds per risk window, packed.
local COUNTS = '<' .. string.rep('i8', #COUNTED + #RISKS)
local out = {}
for _, e in ipairs(events) do
  local second, terminal = e[2], e[4]
  local edges = P .. 't:' .. terminal .. ':e'
  local row = {}
  for j, span in ipairs(COUNTED) do
    row[j] = redis.call('ZCOUNT', edges,
      string.format('%d', second - span[1]), string.format('%d', second - span[2]))
  end
  local known = with_frauds[terminal] and frauds_known(terminal, second) or {}
  for j, span in ipairs(RISKS) do
    local n = 0
    for _, at in ipairs(known) do
      if at >= second - span[1] and at <= second - span[2] then n = n + 1 end
    end
    row[#COUNTED + j] = n
  end
  out[#out + 1] = struct.pack(COUNTS, unpack(row))
end
-- Three strings, not arrays of integers: a client parses three replies, not thousands.
return {table.concat(out), table.concat(sizes), table.concat(logs)}
"""
)

_CHARGEBACKS = (
    _COMMON
    + """
for i = 2, #ARGV, 2 do
  local id, reported = ARGV[i], tonumber(ARGV[i + 1])
  local seen = redis.call('GET', P .. 'tx:' .. id)
  if seen then
    local terminal, second = string.match(seen, '^(%d+):(%d+)$')
    add_fraud(terminal, tonumber(second), id, reported)
  else
    local waiting = redis.call('HGET', P .. 'cb', id)
    if not waiting or reported < tonumber(waiting) then
      redis.call('HSET', P .. 'cb', id, reported)
    end
  end
end
return 0
"""
)

# Events per script call at most: a script blocks every other client while it runs, so a
# bulk load (the warm-up) goes in slices of a few milliseconds each.
SCRIPT_EVENTS = 1_000
_KIND = {"count": "count", "mean_amount": "mean", "fraud_share": "risk"}
if any(f.entity != "customer" for f in WINDOW_FEATURES if f.aggregation == "mean_amount"):
    raise NotImplementedError("the Redis store sums amounts of customers only")
if any(f.entity != "terminal" for f in WINDOW_FEATURES if f.aggregation == "fraud_share"):
    raise NotImplementedError("the Redis store keeps frauds per terminal only")
_SPEC = json.dumps(
    [
        [
            feature.entity[0],
            _KIND[feature.aggregation],
            (feature.window_days + feature.delay_days) * DAY,
            feature.delay_days * DAY,
        ]
        for feature in WINDOW_FEATURES
    ]
)
# What the script answers per event, in its order: the terminal counts, then the risks.
_TERMINAL_ANSWERS = [
    f for f in WINDOW_FEATURES if f.entity == "terminal" and f.aggregation == "count"
] + [f for f in WINDOW_FEATURES if f.aggregation == "fraud_share"]
_CUSTOMER_FEATURES = [f for f in WINDOW_FEATURES if f.entity == "customer"]
# A customer window's span: its first and last second, as offsets before the event.
_SPANS = list(
    dict.fromkeys(
        ((f.window_days + f.delay_days) * DAY, f.delay_days * DAY) for f in _CUSTOMER_FEATURES
    )
)
_SEGMENT = 1 << 33  # a log entry's key: its customer's place in the batch, then its second
_BIAS = 1 << 32  # keeps a key's second positive (seconds from 1833 on)


class RedisStore(FeatureStore):
    def __init__(self, url: str, prefix: str = "lakebed:") -> None:
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url)
        self._update = self._redis.register_script(_UPDATE)
        self._chargebacks = self._redis.register_script(_CHARGEBACKS)

    def update(self, batch: Transactions) -> Floats:
        return assemble(batch, self._record_and_read(batch) if len(batch) else {})

    def _record_and_read(self, batch: Transactions) -> dict[str, npt.NDArray[np.generic]]:
        """Per window feature, what ``assemble`` takes, in one script call per
        ``SCRIPT_EVENTS`` events."""
        if len(batch) > SCRIPT_EVENTS:
            parts = [
                self._record_and_read(batch.take(np.arange(i, min(i + SCRIPT_EVENTS, len(batch)))))
                for i in range(0, len(batch), SCRIPT_EVENTS)
            ]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        packed = "\x1e".join(
            f"{t}\x1f{s}\x1f{c}\x1f{m}\x1f{a}"
            for t, s, c, m, a in zip(
                batch.transaction_ids,
                batch.seconds.tolist(),
                batch.customers.tolist(),
                batch.terminals.tolist(),
                batch.cents.tolist(),
                strict=True,
            )
        )
        args: list[str | int] = [RETENTION_DAYS * DAY, _SPEC, packed]
        answers, sizes, logs = self._update(keys=[self.prefix], args=args)
        terminal = np.frombuffer(answers, dtype="<i8").reshape(len(batch), len(_TERMINAL_ANSWERS))
        windows: dict[str, npt.NDArray[np.generic]] = {
            feature.name: terminal[:, column] for column, feature in enumerate(_TERMINAL_ANSWERS)
        }
        counts, cents = _customer_windows(
            batch, np.frombuffer(sizes, dtype="<i4"), np.frombuffer(logs, dtype="<i8")
        )
        for feature in _CUSTOMER_FEATURES:
            span = _SPANS.index(
                ((feature.window_days + feature.delay_days) * DAY, feature.delay_days * DAY)
            )
            windows[feature.name] = counts[span]
            if feature.aggregation == "mean_amount":
                windows[f"{feature.name}:cents"] = cents[span]
        return windows

    def record_chargebacks(self, chargebacks: Chargebacks) -> None:
        if not len(chargebacks):
            return
        if len(chargebacks) > SCRIPT_EVENTS:
            for i in range(0, len(chargebacks), SCRIPT_EVENTS):
                self.record_chargebacks(
                    Chargebacks(
                        chargebacks.transaction_ids[i : i + SCRIPT_EVENTS],
                        chargebacks.reported_seconds[i : i + SCRIPT_EVENTS],
                    )
                )
            return
        args: list[str | int] = [RETENTION_DAYS * DAY]
        for row in zip(
            chargebacks.transaction_ids, chargebacks.reported_seconds.tolist(), strict=True
        ):
            args.extend(row)
        self._chargebacks(keys=[self.prefix], args=args)

    def clear(self) -> None:
        """Delete this store's keys (only those under its prefix)."""
        batch: list[bytes] = []
        for key in self._redis.scan_iter(match=f"{self.prefix}*", count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                self._redis.unlink(*batch)
                batch = []
        if batch:
            self._redis.unlink(*batch)

    def close(self) -> None:
        self._redis.close()


def _customer_windows(
    batch: Transactions, sizes: npt.NDArray[np.int32], logs: npt.NDArray[np.int64]
) -> tuple[list[Int64s], list[Int64s]]:
    """Count and cent total of every customer span for every event of the batch, from the
    customers' logs as the script returns them (in the order each customer first appears
    in the batch, (second, cents) pairs one after the other): the logs' entries sorted by
    customer and second, and two binary searches per event and span over all of them."""
    _, first, inverse = np.unique(batch.customers, return_index=True, return_inverse=True)
    place = np.empty(len(first), dtype=np.int64)
    place[np.argsort(first)] = np.arange(len(first))
    base = place[inverse.ravel()] * _SEGMENT + _BIAS + batch.seconds
    seconds, amounts = logs[0::2], logs[1::2]
    keys = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes) * _SEGMENT + _BIAS + seconds
    order = np.argsort(keys, kind="stable")  # a log is in arrival order: nearly sorted
    keys = keys[order]
    prefix = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(amounts[order], out=prefix[1:])
    counts, cents = [], []
    for before, delay in _SPANS:
        start = np.searchsorted(keys, base - before, side="left")
        stop = np.searchsorted(keys, base - delay, side="right")
        counts.append((stop - start).astype(np.int64))
        cents.append(prefix[stop] - prefix[start])
    return counts, cents
