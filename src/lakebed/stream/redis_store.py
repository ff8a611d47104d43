"""The Redis feature store (cluster profile): sorted sets and day buckets, in Lua.

Per card and per terminal, a sorted set of the entity's recent events (score: the event
second) answers a window's count exactly with one ``ZCOUNT``, and its partial days at the
edges exactly to the second; a hash of day buckets of cents answers the whole days of a
sum with one ``HMGET``, shared by the windows that end at the same transaction. So windows
are exact, as the offline SQL's ``RANGE`` frames are, and no history is rescanned. Frauds
per terminal sit in a sorted set by event time with their report times beside them.

A batch (up to 1,000 events) is one ``EVALSHA``: one round trip, and atomic, so a worker
killed mid-batch leaves all of its updates or none. ``SET NX`` on the transaction id makes
each update idempotent. Data older than the longest window is trimmed as entities are touched,
and every key expires after the retention period of wall-clock time as well, so idle cards
and terminals do not stay for ever.
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
    Transactions,
)

_COMMON = """
local DAY = 86400
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
local WIDEST = 1
for _, f in ipairs(spec) do
  if f[2] == 'mean' then WIDEST = math.max(WIDEST, (f[3] - f[4]) / DAY) end
end

local function record(entity, id, second, cents)
  local edges = P .. entity .. ':e'
  redis.call('ZADD', edges, second, id .. ':' .. (cents or 0))
  redis.call('EXPIRE', edges, TTL)
  if math.fmod(second, 97) == 0 then
    redis.call('ZREMRANGEBYSCORE', edges, '-inf', '(' .. (second - RETAIN))
  end
  if not cents then return end
  local buckets = P .. entity .. ':b'
  local day = math.floor(second / DAY)
  if redis.call('HINCRBY', buckets, 'a' .. day, cents) == cents and math.fmod(day, 8) == 0 then
    -- a new day bucket, once a week or so: drop buckets that fell out of every window
    for _, field in ipairs(redis.call('HKEYS', buckets)) do
      if tonumber(string.sub(field, 2)) < day - RETAIN / DAY then
        redis.call('HDEL', buckets, field)
      end
    end
  end
  redis.call('EXPIRE', buckets, TTL)
end

local function count(entity, low, high)
  return redis.call('ZCOUNT', P .. entity .. ':e', low, high)
end

local function edge_cents(edges, low, high)
  local cents = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', edges, low, high)) do
    cents = cents + tonumber(string.match(member, ':(%-?%d+)$'))
  end
  return cents
end

-- Sums over windows that all end at the same second: the day buckets of the widest one
-- and the partial last day are read once per event and shared by the narrower ones.
local function total_cents(entity, low, high, shared)
  local edges = P .. entity .. ':e'
  local first, last = math.floor(low / DAY), math.floor(high / DAY)
  if first == last then return edge_cents(edges, low, high) end
  local key = entity .. '@' .. high
  local cached = shared[key]
  if not cached then
    cached = {tail = edge_cents(edges, last * DAY, high), days = {}}
    local fields = {}
    for day = last - WIDEST, last - 1 do fields[#fields + 1] = 'a' .. day end
    local values = redis.call('HMGET', P .. entity .. ':b', unpack(fields))
    for i = 1, #fields do cached.days[last - WIDEST + i - 1] = values[i] end
    shared[key] = cached
  end
  local cents = edge_cents(edges, low, (first + 1) * DAY - 1) + cached.tail
  for day = first + 1, last - 1 do
    cents = cents + (tonumber(cached.days[day]) or 0)
  end
  return cents
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
    record('c:' .. customer, id, second, cents)
    record('t:' .. terminal, id, second, nil)
    local waiting = redis.call('GET', P .. 'cb:' .. id)
    if waiting then
      add_fraud(terminal, second, id, tonumber(waiting))
      redis.call('DEL', P .. 'cb:' .. id)
    end
  end
end

local out = {}
for _, e in ipairs(events) do
  local second = e[2]
  local ids = {c = e[3], t = e[4]}
  local shared = {}
  for _, f in ipairs(spec) do
    local low, high = second - f[3], second - f[4]
    local entity = f[1] .. ':' .. ids[f[1]]
    if f[2] == 'risk' then
      local known = shared.frauds or frauds_known(ids.t, second)
      shared.frauds = known
      out[#out + 1] = known_frauds(known, low, high)
    else
      local key = entity .. ':' .. low .. ':' .. high
      local counted = shared[key] or count(entity, low, high)
      shared[key] = counted
      out[#out + 1] = counted
      if f[2] == 'mean' then out[#out + 1] = total_cents(entity, low, high, shared) end
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

    def _record_and_read(self, batch: Transactions) -> dict[str, npt.NDArray[np.generic]]:
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
