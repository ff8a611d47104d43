"""One contract, two feature stores: the in-process store and Redis answer alike."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pytest
import redis

from lakebed.fraud.features import FEATURE_NAMES, features_of
from lakebed.services import RedisServer
from lakebed.stream.store import DAY, Chargebacks, FeatureStore, Transactions

START = int(datetime(2018, 5, 1, 12, tzinfo=UTC).timestamp())
HOUR = 3600


def column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def tx(ids: list[str], seconds: list[int], amounts: list[float], terminal: int = 7) -> Transactions:
    n = len(ids)
    return Transactions.of(ids, seconds, [1] * n, [terminal] * n, amounts)


def test_customer_windows_include_the_transaction_and_both_bounds(store: FeatureStore) -> None:
    history = tx(
        [f"old{i}" for i in range(8)],
        [START + i * 6 * HOUR for i in range(8)],
        [10.0 * (i + 1) for i in range(8)],
    )
    store.update(history)
    now = START + 8 * 6 * HOUR  # exactly one day after old4
    row = store.update(tx(["new"], [now], [5.0]))[0]
    assert row[column("customer_transactions_1d")] == 5  # old4..old7 and itself
    assert row[column("customer_mean_amount_1d")] == pytest.approx((50 + 60 + 70 + 80 + 5) / 5)
    assert row[column("customer_transactions_30d")] == 9
    assert row[column("amount")] == 5.0


def test_cents_are_exact(store: FeatureStore) -> None:
    amounts = [0.1, 0.2, 0.7, 1234567.89, 0.01]
    rows = store.update(tx([f"t{i}" for i in range(5)], [START + i for i in range(5)], amounts))
    assert rows[-1, column("customer_mean_amount_1d")] == pytest.approx(
        round(sum(amounts) * 100) / 100 / 5, abs=1e-9
    )


def test_a_duplicate_counts_once_in_a_batch_and_across_batches(store: FeatureStore) -> None:
    first = store.update(tx(["a", "a", "b"], [START, START, START + 60], [10.0, 10.0, 20.0]))
    again = store.update(tx(["a", "b"], [START, START + 60], [10.0, 20.0]))
    count = column("customer_transactions_1d")
    assert first[:, count].tolist() == [1, 1, 2]  # b is a minute after a
    np.testing.assert_array_equal(again, first[[0, 2]])


def test_terminal_risk_waits_for_the_delay_and_the_report(store: FeatureStore) -> None:
    store.update(tx(["fraud", "ok"], [START, START + HOUR], [50.0, 60.0], terminal=9))
    # The chargeback is reported 3 days after the fraud.
    store.record_chargebacks(Chargebacks(["fraud"], np.array([START + 3 * DAY])))
    risk, count = column("terminal_risk_1d"), column("terminal_transactions_1d")
    week_later = START + 7 * DAY + HOUR
    row = store.update(tx(["later"], [week_later], [1.0], terminal=9))[0]
    assert (row[count], row[risk]) == (2, 0.5)  # both 7 days back; one of two was fraud
    before_report = store.update(tx(["early"], [START + 2 * DAY], [1.0], terminal=9))[0]
    assert before_report[column("terminal_risk_30d")] == 0.0  # the window is still open


def test_a_label_reported_later_changes_no_feature(store: FeatureStore) -> None:
    store.update(tx(["f"], [START], [50.0], terminal=3))
    at = START + 8 * DAY
    before = store.update(tx(["x"], [at], [1.0], terminal=3))[0]
    store.record_chargebacks(Chargebacks(["f"], np.array([at + HOUR])))
    after = store.update(tx(["x"], [at], [1.0], terminal=3))[0]
    np.testing.assert_array_equal(after, before)


def test_a_chargeback_ahead_of_its_transaction_waits_for_it(store: FeatureStore) -> None:
    store.record_chargebacks(Chargebacks(["f"], np.array([START + DAY])))
    store.update(tx(["f"], [START], [50.0], terminal=4))
    row = store.update(tx(["y"], [START + 7 * DAY + 1], [1.0], terminal=4))[0]
    assert row[column("terminal_risk_1d")] == 1.0


def test_any_64_bit_id_is_its_own_entity(store: FeatureStore) -> None:
    """Ids that agree in their low 32 bits, and the largest the feed accepts, never share
    a window (the in-process store once packed ids into 32 bits of a key)."""
    ids = [1, 1 + 2**32, 2**31, 2**63 - 1]
    n = len(ids)
    seconds = [START + i for i in range(n)]
    rows = store.update(Transactions.of([f"c{i}" for i in range(n)], seconds, ids, ids, [1.0] * n))
    assert rows[:, column("customer_transactions_1d")].tolist() == [1] * n
    store.record_chargebacks(Chargebacks(["c0"], np.array([START + DAY])))
    later = [START + 7 * DAY + 60] * n
    rows = store.update(Transactions.of([f"d{i}" for i in range(n)], later, ids, ids, [1.0] * n))
    assert rows[:, column("terminal_transactions_1d")].tolist() == [1] * n
    assert rows[:, column("terminal_risk_1d")].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert rows[:, column("customer_transactions_7d")].tolist() == [1] * n  # 7 days + 60 s


def test_terminal_risk_stays_exact_as_chargebacks_arrive_batch_by_batch(
    store: FeatureStore,
) -> None:
    """Chargebacks arrive between batches, some ahead of their transaction and some twice,
    the second report earlier than the first (the earlier one counts): every terminal risk
    equals a count over what had been reported by then. The in-process store merges new
    frauds into its sorted index and rebuilds it only when a report moves earlier."""
    rng = np.random.default_rng(11)
    n, size = 3_000, 100
    seconds = START + np.sort(rng.integers(0, 20 * DAY, n))
    terminals = rng.integers(0, 6, n)
    frauds = np.flatnonzero(rng.random(n) < 0.2)
    reported = seconds + rng.integers(HOUR, 5 * DAY, n)
    ids = [f"r{i}" for i in range(n)]
    known = np.full(n, np.iinfo(np.int64).max)  # the earliest report the store was sent
    risks = [f for f in features_of("terminal") if f.aggregation == "fraud_share"]
    checked = 0
    for first in range(0, n, size):
        rows = np.arange(first, min(first + size, n))
        ahead = frauds[(frauds >= first + size) & (frauds < first + 2 * size)]
        again = frauds[(frauds >= first - 5 * size) & (frauds < first - 4 * size)]
        if first // size % 5:  # now and then, so most batches add frauds to the index
            again = again[:0]
        for chosen, reports in ((ahead, reported[ahead] + DAY), (again, reported[again])):
            store.record_chargebacks(Chargebacks([ids[i] for i in chosen], reports))
            known[chosen] = np.minimum(known[chosen], reports)
        features = store.update(
            Transactions(
                [ids[i] for i in rows],
                seconds[rows],
                np.zeros(len(rows), np.int64),
                terminals[rows],
                np.full(len(rows), 100, np.int64),
            )
        )
        sent = np.arange(rows[-1] + 1)
        for at, i in enumerate(rows):
            for feature in risks:
                high = seconds[i] - feature.delay_days * DAY
                low = high - feature.window_days * DAY
                inside = sent[
                    (terminals[sent] == terminals[i])
                    & (seconds[sent] >= low)
                    & (seconds[sent] <= high)
                ]
                fraud = np.isin(inside, frauds) & (known[inside] < seconds[i])
                expected = fraud.sum() / len(inside) if len(inside) else 0.0
                assert features[at, column(feature.name)] == expected, (feature.name, i)
                checked += int(fraud.any())
    assert checked >= 500  # many rows had known frauds in their window


def test_clear_forgets_everything(store: FeatureStore) -> None:
    store.update(tx(["a"], [START], [10.0]))
    store.clear()
    row = store.update(tx(["b"], [START + 1], [10.0]))[0]
    assert row[column("customer_transactions_1d")] == 1


def test_windows_stay_exact_over_months_of_events(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long enough for the stores' periodic work (compaction, expiry of old events and
    ids) to run several times: every window still equals a count over all history. The
    in-process store's runs are made smaller here, so its merges (of the small run into
    the middle one, every 700 events, not on a batch boundary; of everything into the
    large one, every 6,000) happen many times over."""
    monkeypatch.setattr("lakebed.stream.memory_store.SMALL_RUN", 700)
    monkeypatch.setattr("lakebed.stream.memory_store.COMPACT_EVERY", 6_000)
    rng = np.random.default_rng(7)
    n, days, batch_size = 45_000, 50, 500
    seconds = START + np.sort(rng.integers(0, days * DAY, n))
    seconds += rng.integers(-2 * HOUR, 2 * HOUR, n) * (rng.random(n) < 0.05)  # some late
    customers = rng.integers(0, 40, n)
    terminals = rng.integers(0, 30, n)
    cents = rng.integers(1, 50_000, n)
    ids = [f"m{i}" for i in range(n)]
    names = [f"customer_transactions_{d}d" for d in (1, 7, 30)]
    means = [f"customer_mean_amount_{d}d" for d in (1, 7, 30)]
    terminal_names = [f"terminal_transactions_{d}d" for d in (1, 7, 30)]
    checked = 0
    for first in range(0, n, batch_size):
        rows = np.arange(first, min(first + batch_size, n))
        batch = Transactions(
            [ids[i] for i in rows], seconds[rows], customers[rows], terminals[rows], cents[rows]
        )
        features = store.update(batch)
        if first // batch_size % 9:
            continue
        seen = np.arange(rows[-1] + 1)
        for at in range(0, len(rows), 25):
            i = rows[at]
            mine = seen[customers[seen] == customers[i]]
            theirs = seen[terminals[seen] == terminals[i]]
            for days_back, name, mean in zip((1, 7, 30), names, means, strict=True):
                low = seconds[i] - days_back * DAY
                inside = mine[(seconds[mine] >= low) & (seconds[mine] <= seconds[i])]
                assert features[at, column(name)] == len(inside), (name, i)
                expected = cents[inside].sum() / max(len(inside), 1) / 100
                assert features[at, column(mean)] == pytest.approx(expected, abs=1e-9)
            for days_back, name in zip((1, 7, 30), terminal_names, strict=True):
                high = seconds[i] - 7 * DAY
                low = high - days_back * DAY
                inside = theirs[(seconds[theirs] >= low) & (seconds[theirs] <= high)]
                assert features[at, column(name)] == len(inside), (name, i)
            checked += 1
    assert checked >= 200
    # A batch sent again after the periodic work counts nothing twice.
    again = np.arange(n - batch_size, n)
    repeat = Transactions(
        [ids[i] for i in again], seconds[again], customers[again], terminals[again], cents[again]
    )
    assert np.array_equal(store.update(repeat), features)


def test_the_in_process_store_forgets_what_no_window_reaches() -> None:
    from lakebed.stream.memory_store import COMPACT_EVERY, MemoryStore
    from lakebed.stream.store import RETENTION_DAYS

    store = MemoryStore()
    per_day = 2_000
    # chargebacks whose transactions never come: they wait until no window could need them
    ghosts = [f"ghost{i}" for i in range(5_000)]
    store.record_chargebacks(Chargebacks(ghosts, np.full(len(ghosts), START)))
    for day in range(3 * RETENTION_DAYS):
        seconds = START + day * DAY + np.arange(per_day) * 40
        store.update(
            Transactions(
                [f"d{day}_{i}" for i in range(per_day)],
                seconds.astype(np.int64),
                np.arange(per_day, dtype=np.int64) % 100,
                np.arange(per_day, dtype=np.int64) % 70,
                np.full(per_day, 1_000, dtype=np.int64),
            )
        )
    assert store.held() <= (RETENTION_DAYS + 1) * per_day + COMPACT_EVERY
    # the ids a batch at a time, not a compaction's worth late; the ghosts are gone
    assert store.remembered() <= (RETENTION_DAYS + 2) * per_day


def test_in_process_windows_stay_exact_while_a_compaction_runs_in_the_background() -> None:
    """The large merge runs on a thread; until it is done, the runs it merges are a run of
    their own, and every event is counted exactly once before, during and after."""
    from lakebed.stream.memory_store import _Events, _keys

    compactor = ThreadPoolExecutor(1)
    events = _Events(compactor)

    def add(seconds: range) -> None:
        ones = np.ones(len(seconds), np.int64)
        events.add(_keys(ones, np.array(seconds)), ones)

    def window() -> tuple[int, int]:
        """Events of seconds 50..159, and cents of 0..159."""
        ends = _keys(np.array([1, 1]), np.array([159, 159]))
        count, cents = events.window(_keys(np.array([1, 1]), np.array([50, 0])), ends)
        return int(count[0]), int(cents[1])

    add(range(100))
    events.compact(0)
    events.settle(wait=True)
    assert len(events.base) == 100
    gate = threading.Event()
    compactor.submit(gate.wait)  # holds the next compaction back until the gate opens
    add(range(100, 150))
    events.compact(50)  # the large run's seconds 0..49 expire
    add(range(150, 160))
    assert len(events.frozen) == 50  # set aside, still waiting
    assert len(events.base) == 100
    assert window() == (110, 160)
    gate.set()
    events.settle(wait=True)
    assert len(events.frozen) == 0
    assert len(events) == 110
    assert window() == (110, 110)  # seconds 0..49 are gone
    compactor.shutdown()


def test_redis_forgets_what_no_window_reaches(redis_server: RedisServer) -> None:
    """A customer's packed log and a terminal's sorted set keep the retention's events (the
    log at most twice as many), however long they are used: three retentions of hourly
    events, at the same second past the hour, are trimmed as they are touched."""
    from lakebed.stream.redis_store import RedisStore
    from lakebed.stream.store import RETENTION_DAYS

    per_day = 24
    with RedisStore(redis_server.url, prefix="forget:") as store:
        store.clear()
        for day in range(3 * RETENTION_DAYS):
            seconds = START + day * DAY + np.arange(per_day) * HOUR + 7
            store.update(
                Transactions(
                    [f"f{day}_{i}" for i in range(per_day)],
                    seconds.astype(np.int64),
                    np.full(per_day, 1, dtype=np.int64),
                    np.full(per_day, 2, dtype=np.int64),
                    np.full(per_day, 1_000, dtype=np.int64),
                )
            )
        client = redis.Redis.from_url(redis_server.url)
        customer_events = client.strlen("forget:c:1:l") // 16
        terminal_events = client.zcard("forget:t:2:e")
        assert RETENTION_DAYS * per_day <= customer_events <= 2 * RETENTION_DAYS * per_day
        assert RETENTION_DAYS * per_day <= terminal_events <= (RETENTION_DAYS + 5) * per_day
        assert 0 < client.ttl("forget:c:1:l") <= RETENTION_DAYS * DAY
        client.close()
        store.clear()


def test_redis_drops_waiting_chargebacks_and_fraud_marks_no_window_needs(
    redis_server: RedisServer,
) -> None:
    """Chargebacks waiting for their transaction sit in one hash, and terminals with frauds
    are named in one set: neither may grow for ever. A waiting chargeback reported before
    anything a window reaches goes with the next batch; one that still matters waits and
    applies; a terminal whose frauds have expired leaves the set when next seen."""
    from lakebed.stream.redis_store import RedisStore
    from lakebed.stream.store import RETENTION_DAYS

    retention = RETENTION_DAYS * DAY
    with RedisStore(redis_server.url, prefix="drop:") as store:
        store.clear()
        client = redis.Redis.from_url(redis_server.url)
        store.record_chargebacks(
            Chargebacks(["never", "soon"], np.array([START, START + retention]))
        )
        assert client.hlen("drop:cb") == 2
        store.update(tx(["x"], [START + retention + HOUR], [1.0], terminal=5))
        assert client.hkeys("drop:cb") == [b"soon"]  # "never" can reach no window now
        fraud_at = START + retention - HOUR
        store.update(tx(["soon"], [fraud_at], [5.0], terminal=5))
        assert client.hlen("drop:cb") == 0
        assert client.smembers("drop:tf") == {b"5"}
        row = store.update(tx(["y"], [fraud_at + 7 * DAY + 60], [1.0], terminal=5))[0]
        assert (row[column("terminal_transactions_1d")], row[column("terminal_risk_1d")]) == (1, 1)
        client.delete("drop:t:5:f")  # as its expiry would
        row = store.update(tx(["z"], [fraud_at + 7 * DAY + 120], [1.0], terminal=5))[0]
        assert row[column("terminal_risk_1d")] == 0.0
        assert client.smembers("drop:tf") == set()
        client.close()
        store.clear()
