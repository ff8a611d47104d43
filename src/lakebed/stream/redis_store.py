"""The Redis feature store (cluster profile): a packed log per customer, sorted sets per
terminal, in Lua.

A customer's recent events sit in one string, 16 bytes each (second, cents), appended as
they arrive: one ``APPEND`` records an event, one ``GET`` a batch reads all of a customer's
windows, counted and summed exactly to the second in one pass in Lua. This replaced a
sorted set per customer with a hash of day buckets, whose partial days were range reads
parsed member by member: 64 of the script's 130 µs an event (measured), and ~100 bytes an
event of memory instead of 16. Reading the whole log is linear in a customer's events
within the retention (~75 on the default world), which people's spending keeps small;
terminals, which can be very busy, keep a sorted set (score: the event second) that
answers each window with one ``ZCOUNT`` in logarithmic time. Frauds per terminal sit in
a sorted set by event time with their report times beside them.

A batch (up to 1,000 events) is one ``EVALSHA``: one round trip, and atomic, so a worker
killed mid-batch leaves all of its updates or none. ``SET NX`` on the transaction id makes
each update idempotent. Events older than the longest window are trimmed as entities are
touched, and every key expires after the retention period of wall-clock time as well, so
idle customers and terminals do not stay for ever.
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

local function unpacked(blob)
  local seconds, cents = {}, {}
  local n = #blob / 16
  for first = 0, n - 1, CHUNK do
    local m = math.min(CHUNK, n - first)
    local values = {struct.unpack(
      '<' .. string.rep('i8', 2 * m), string.sub(blob, first * 16 + 1, (first + m) * 16))}
    for i = 1, 2 * m, 2 do
      seconds[#seconds + 1] = values[i]
      cents[#cents + 1] = values[i + 1]
    end
  end
  return seconds, cents
end

local function trim(key, second)
  local seconds, cents = unpacked(redis.call('GET', key))
  local kept = {}
  for i = 1, #seconds do
    if seconds[i] >= second - RETAIN then
      kept[#kept + 1] = struct.pack(PACKED, seconds[i], cents[i])
    end
  end
  redis.call('SET', key, table.concat(kept), 'EX', TTL)
end

local function record_customer(customer, second, cents)
  local key = P .. 'c:' .. customer .. ':l'
  local events = redis.call('APPEND', key, struct.pack(PACKED, second, cents)) / 16
  redis.call('EXPIRE', key, TTL)
  -- Drop what fell out of every window whenever the log reaches a power of two events:
  -- a trimmed log grows back to the same mark, so it holds the retention's events plus
  -- a little (at most twice as many), and a trim's cost is shared by the appends since.
  if events >= TRIM_EVENTS and bit.band(events, events - 1) == 0 then trim(key, second) end
end

local function record_terminal(terminal, id, second)
  local edges = P .. 't:' .. terminal .. ':e'
  redis.call('ZADD', edges, second, id)
  redis.call('EXPIRE', edges, TTL)
  if math.fmod(second, 97) == 0 then
    redis.call('ZREMRANGEBYSCORE', edges, '-inf', '(' .. (second - RETAIN))
  end
end

-- The customer windows, distinct (low, high) offsets, each with a count and a sum.
local SPANS, SPAN_OF = {}, {}
for i, f in ipairs(spec) do
  if f[1] == 'c' then
    local key = f[3] .. ':' .. f[4]
    if not SPAN_OF[key] then
      SPANS[#SPANS + 1] = {f[3], f[4]}
      SPAN_OF[key] = #SPANS
    end
    SPAN_OF[i] = SPAN_OF[key]
  end
end

-- Every customer window of one event in one pass over the customer's events.
local function customer_windows(log, second)
  local counts, sums = {}, {}
  local lows, highs = {}, {}
  for j, span in ipairs(SPANS) do
    counts[j], sums[j] = 0, 0
    lows[j], highs[j] = second - span[1], second - span[2]
  end
  local seconds, cents = log[1], log[2]
  for i = 1, #seconds do
    local at = seconds[i]
    for j = 1, #SPANS do
      if at >= lows[j] and at <= highs[j] then
        counts[j] = counts[j] + 1
        sums[j] = sums[j] + cents[i]
      end
    end
  end
  return counts, sums
end

-- A terminal's frauds in the span of every risk window, read once per event (one range
-- read and one report-time read, not two per window), then counted per window in Lua.
local RISK_LOW, RISK_HIGH = 0, nil
for _, f in ipairs(spec) do
  if f[2] == 'risk' then
    RISK_LOW = math.max(RISK_LOW, f[3])
    RISK_HIGH = math.min(RISK_HIGH or f[4], f[4])
  end
end

local function frauds_known(terminal, second)
  local found = redis.call(
    'ZRANGEBYSCORE', P .. 't:' .. terminal .. ':f',
    second - RISK_LOW, second - RISK_HIGH, 'WITHSCORES')
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

local function known_frauds(known, low, high)
  local n = 0
  for _, at in ipairs(known) do
    if at >= low and at <= high then n = n + 1 end
  end
  return n
end

-- The batch comes packed in one argument (fields split by \\31, events by \\30): one
-- string to send and to parse, instead of five arguments per event.
local events = {}
for id, second, customer, terminal, cents in
    string.gmatch(ARGV[3], '([^\\31\\30]+)\\31(%d+)\\31(%d+)\\31(%d+)\\31(%-?%d+)') do
  events[#events + 1] = {id, tonumber(second), customer, terminal, tonumber(cents)}
end

for _, e in ipairs(events) do
  local id, second, customer, terminal, cents = e[1], e[2], e[3], e[4], e[5]
  if redis.call('SET', P .. 'tx:' .. id, terminal .. ':' .. second, 'NX', 'EX', TTL) then
    record_customer(customer, second, cents)
    record_terminal(terminal, id, second)
    local waiting = redis.call('GET', P .. 'cb:' .. id)
    if waiting then
      add_fraud(terminal, second, id, tonumber(waiting))
      redis.call('DEL', P .. 'cb:' .. id)
    end
  end
end

-- Reads come after every record of the batch, so a customer's log is read once a batch.
local logs = {}
local out = {}
for _, e in ipairs(events) do
  local second, customer, terminal = e[2], e[3], e[4]
  local log = logs[customer]
  if not log then
    log = {unpacked(redis.call('GET', P .. 'c:' .. customer .. ':l') or '')}
    logs[customer] = log
  end
  local counts, sums = customer_windows(log, second)
  local shared = {}
  for i, f in ipairs(spec) do
    if f[1] == 'c' then
      out[#out + 1] = counts[SPAN_OF[i]]
      if f[2] == 'mean' then out[#out + 1] = sums[SPAN_OF[i]] end
    elseif f[2] == 'risk' then
      shared.frauds = shared.frauds or frauds_known(terminal, second)
      out[#out + 1] = known_frauds(shared.frauds, second - f[3], second - f[4])
    else
      local key = f[3] .. ':' .. f[4]
      shared[key] = shared[key] or redis.call(
        'ZCOUNT', P .. 't:' .. terminal .. ':e', second - f[3], second - f[4])
      out[#out + 1] = shared[key]
    end
  end
end
-- one string, not an array of integers: a client parses one reply instead of thousands
return table.concat(out, ',')
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
    local waiting = redis.call('GET', P .. 'cb:' .. id)
    if not waiting or reported < tonumber(waiting) then
      redis.call('SET', P .. 'cb:' .. id, reported, 'EX', TTL)
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
_WIDTH = [2 if f.aggregation == "mean_amount" else 1 for f in WINDOW_FEATURES]


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
        reply = self._update(keys=[self.prefix], args=args)
        flat = np.array(reply.split(b","), dtype=np.int64)
        values = flat.reshape(len(batch), sum(_WIDTH))
        windows: dict[str, npt.NDArray[np.generic]] = {}
        column = 0
        for feature, width in zip(WINDOW_FEATURES, _WIDTH, strict=True):
            windows[feature.name] = values[:, column]
            if width == 2:
                windows[f"{feature.name}:cents"] = values[:, column + 1]
            column += width
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
