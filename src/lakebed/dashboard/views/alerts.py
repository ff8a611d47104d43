"""Live alerts: what the stream engine flags as it happens (the page refreshes itself),
with each alert's score and reasons, and the engine's throughput and latency lately."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lakebed.dashboard.common import fetch, note, plot

REFRESH_S = 2
DEFAULT_WINDOW = "1 hour"
WINDOWS = {"5 minutes": 5.0, "15 minutes": 15.0, "1 hour": 60.0, "24 hours": 1440.0}


def render() -> None:
    st.title("Live alerts")
    st.caption(
        "Alerts from the stream engine as they are published, and its throughput and "
        f"produce-to-commit latency; refreshed every {REFRESH_S} s."
    )
    window = st.segmented_control("Window", list(WINDOWS), default=DEFAULT_WINDOW, key="window")
    _live(WINDOWS[window or DEFAULT_WINDOW])


@st.fragment(run_every=REFRESH_S)
def _live(minutes: float) -> None:
    activity = fetch(lambda api: api.activity(minutes, bucket_seconds=_bucket(minutes)))
    alerts = fetch(lambda api: api.alerts(limit=50))
    if activity is not None:
        _figures(activity, minutes)
    if alerts is not None:
        _alerts(alerts)


def _bucket(minutes: float) -> float:
    return max(5.0, minutes * 60 / 120)


def _when(epoch: float | None) -> str:
    if not epoch:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _figures(activity: dict[str, Any], minutes: float) -> None:
    note(activity.get("message"))
    if activity.get("message") and activity.get("last_batch_at"):
        st.caption(f"last batch scored at {_when(activity['last_batch_at'])}")
    columns = st.columns(5)
    busy = [b for b in activity["buckets"] if b["transactions"]]
    peak = max((b["transactions"] / activity["bucket_seconds"] for b in busy), default=0.0)
    columns[0].metric("transactions", f"{activity['transactions']:,}")
    columns[1].metric("peak throughput", f"{peak:,.0f}/s")
    columns[2].metric("p50 latency", _ms(activity["p50_ms"]))
    columns[3].metric("p99 latency", _ms(activity["p99_ms"]))
    columns[4].metric("alerts", f"{activity['alerts']:,}")
    if not busy:
        return
    left, right = st.columns(2)
    with left:
        buckets = activity["buckets"]
        width_s = activity["bucket_seconds"]
        # Bars at their bucket's middle, one bucket wide, on the whole window: a burst
        # shows as a burst, not as a bar stretched over the chart.
        times = [datetime.fromtimestamp(b["start"] + width_s / 2, UTC) for b in buckets]
        rate = [b["transactions"] / width_s for b in buckets]
        figure = go.Figure(
            go.Bar(x=times, y=rate, width=[width_s * 1000] * len(buckets), name="transactions/s")
        )
        figure.add_trace(
            go.Scatter(
                x=times, y=[b["p99_ms"] for b in buckets], name="p99 ms",
                yaxis="y2", mode="markers",
            )
        )  # fmt: skip
        window = [datetime.fromtimestamp(activity[edge], UTC) for edge in ("since", "until")]
        figure.update_layout(
            title=f"Throughput and p99 latency, last {minutes:g} min",
            xaxis={"range": window, "type": "date"},
            yaxis={"title": "transactions/s"},
            yaxis2={"title": "p99 ms", "overlaying": "y", "side": "right", "rangemode": "tozero"},
            legend={"orientation": "h"},
        )
        plot(figure, "throughput")
    with right:
        edges = activity["histogram"]["edges_ms"]
        counts = activity["histogram"]["counts"]
        centres = [(low * high) ** 0.5 for low, high in itertools.pairwise(edges)]
        figure = go.Figure(go.Bar(x=centres, y=counts, name="events"))
        top = max(counts, default=0)
        for name, value in (("p50", activity["p50_ms"]), ("p99", activity["p99_ms"])):
            if value:  # a trace, not a shape: shapes on a log axis take log10 coordinates
                figure.add_trace(
                    go.Scatter(
                        x=[value, value], y=[0, top], mode="lines", line={"dash": "dot"},
                        name=f"{name} {value:,.1f} ms",
                    )
                )  # fmt: skip
        figure.update_layout(
            title="Latency histogram (produce → scored, ms)",
            xaxis={"type": "log", "title": "ms"},
            yaxis={"title": "events"},
            bargap=0,
        )
        plot(figure, "latency_histogram")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _alerts(found: dict[str, Any]) -> None:
    st.subheader("Latest alerts")
    alerts = found["alerts"]
    if not alerts:
        note(found.get("message") or "no alert yet")
        return
    rows = [
        {
            "id": a["id"],
            "published": _when(a["published_at"]),
            "transaction": a["transaction_id"],
            "event time": a["event_time"],
            "card": a["card_id"],
            "terminal": a["terminal_id"],
            "amount": a["amount"],
            "score": a["probability"],
            "decision": a["decision"],
            "reasons": "; ".join(
                f"{r['feature']} = {r['value']:.3g} (typical {r['typical']:.3g})"
                for r in a["reasons"]
            ),
        }
        for a in alerts
    ]
    # A plain table, not a data grid: the text is in the page, for readers and tests alike.
    frame = pd.DataFrame(rows).set_index("id")
    st.table(frame.style.format({"amount": "{:.2f}", "score": "{:.3f}"}))
