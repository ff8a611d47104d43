"""Lakehouse: rows per layer and per day, quarantine by rule, the last run and its dbt
tests, fraud KPIs over time, and a read-only SQL editor over silver and gold."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from lakebed.dashboard.client import ApiError
from lakebed.dashboard.common import LAYER_COLOURS, client, fetch, note, plot, show_error

KPI_SQL = """
SELECT event_date,
       sum(transactions) AS transactions,
       sum(frauds) AS frauds,
       sum(frauds) / sum(transactions) AS fraud_rate,
       sum(fraud_amount_high_amount) AS high_amount,
       sum(fraud_amount_compromised_terminal) AS compromised_terminal,
       sum(fraud_amount_compromised_card) AS compromised_card
FROM gold.fraud_kpis_daily
GROUP BY event_date
ORDER BY event_date
"""
CATEGORY_SQL = """
SELECT event_date, merchant_category, sum(fraud_amount) AS fraud_amount
FROM gold.fraud_kpis_daily
GROUP BY event_date, merchant_category
ORDER BY event_date, merchant_category
"""
EXAMPLE_SQL = """SELECT merchant_category,
       sum(transactions) AS transactions,
       sum(frauds) AS frauds,
       round(100.0 * sum(frauds) / sum(transactions), 3) AS fraud_rate_pct
FROM gold.fraud_kpis_daily
GROUP BY merchant_category
ORDER BY frauds DESC"""


def render() -> None:
    st.title("Lakehouse")
    st.caption("Iceberg bronze → silver → gold, built by dbt; served read-only.")
    status = fetch(lambda api: api.lakehouse())
    if status is not None:
        note(status.get("message"))
        _layers(status)
        _quarantine(status["quarantine"])
        _last_run(status.get("last_run"), status.get("last_build"))
    _kpis()
    _sql_editor()


def _frame(result: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(result["rows"], columns=result["columns"])


def _layers(status: dict[str, Any]) -> None:
    layers = pd.DataFrame(status["layers"], columns=["table", "layer", "rows", "snapshot_id"])
    if layers.empty:
        return
    st.subheader("Rows per layer")
    totals = layers.groupby("layer")["rows"].sum()
    for column, layer in zip(st.columns(3), ("bronze", "silver", "gold"), strict=True):
        column.metric(f"{layer} rows", f"{int(totals.get(layer, 0)):,}")
    left, right = st.columns([2, 3])
    left.dataframe(layers.drop(columns="snapshot_id"), hide_index=True, width="stretch")
    daily = pd.DataFrame(status["daily"], columns=["day", "layer", "rows"])
    with right:
        if daily.empty:
            st.info("no rows per day yet")
        else:
            figure = px.line(
                daily, x="day", y="rows", color="layer", color_discrete_map=LAYER_COLOURS,
                title="Rows per day (bronze, quarantine: landing day; silver, gold: event day)",
                log_y=True,
            )  # fmt: skip
            plot(figure, "rows_per_day")


def _quarantine(rules: list[dict[str, Any]]) -> None:
    st.subheader("Quarantine")
    if not rules:
        st.info("no quarantined rows: every landing line passed the contracts (or none arrived)")
        return
    frame = pd.DataFrame(rules)
    figure = px.bar(
        frame, x="rows", y="rule", color="feed", orientation="h",
        title="Quarantined rows by failed rule",
    )  # fmt: skip
    plot(figure, "quarantine_by_rule")
    for rule in rules:
        with st.expander(f"{rule['feed']} · {rule['rule']} · {rule['rows']:,} rows"):
            for sample in rule["samples"]:
                st.code(sample, language="json", wrap_lines=True)


def _last_run(run: dict[str, Any] | None, build: dict[str, Any] | None) -> None:
    st.subheader("Last pipeline run")
    if run is None:
        st.info("no pipeline run recorded yet: run `lakebed run` (or `make demo`)")
        return
    columns = st.columns(4)
    day, _, clock = run["finished_at"][:19].partition("T")
    columns[0].metric(f"finished {day} (UTC)", clock)
    columns[1].metric("files ingested", f"{run['files_ingested']:,}")
    columns[2].metric("rows ingested", f"{run['rows_ingested']:,}")
    columns[3].metric("files already ingested", f"{run['files_unchanged']:,}")
    if run["skipped"]:
        st.caption(f"dbt did not run: {run['skipped']}")
    if build is None:
        return
    tests = pd.DataFrame(build["tests"], columns=["name", "status", "message"])
    counts = tests["status"].value_counts().to_dict()
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    st.markdown(f"**dbt tests** of the build finished {build['finished_at'][:19]}: {summary}")
    failed = tests[tests["status"].isin(["fail", "error"])]
    if not failed.empty:
        st.error(f"{len(failed)} dbt tests failed: {', '.join(failed['name'])}")
    with st.expander("every dbt test"):
        st.dataframe(tests, hide_index=True, width="stretch")


def _kpis() -> None:
    st.subheader("Fraud KPIs over time")
    try:
        kpis = _frame(client().sql(KPI_SQL))
        categories = _frame(client().sql(CATEGORY_SQL))
    except ApiError as error:
        if error.kind == "nothing_published":
            st.info(f"{error}: the charts appear once gold exists")
        else:
            show_error(error)
        return
    left, right = st.columns(2)
    with left:
        plot(px.bar(kpis, x="event_date", y="transactions", title="Volume"), "kpi_volume")
    with right:
        figure = px.line(kpis, x="event_date", y="fraud_rate", title="Fraud rate (labels known)")
        figure.update_yaxes(tickformat=".2%")
        plot(figure, "kpi_fraud_rate")
    left, right = st.columns(2)
    with left:
        scenarios = kpis.melt(
            id_vars="event_date",
            value_vars=["high_amount", "compromised_terminal", "compromised_card"],
            var_name="scenario",
            value_name="fraud_amount",
        )
        figure = px.area(
            scenarios, x="event_date", y="fraud_amount", color="scenario",
            title="Fraud amount by scenario",
        )  # fmt: skip
        plot(figure, "kpi_scenario")
    with right:
        figure = px.area(
            categories, x="event_date", y="fraud_amount", color="merchant_category",
            title="Fraud amount by merchant category",
        )  # fmt: skip
        plot(figure, "kpi_category")


def _sql_editor() -> None:
    st.subheader("SQL over silver and gold")
    st.caption("One read-only SELECT; anything else is refused with the reason.")
    with st.form("sql"):
        statement = st.text_area("SQL", EXAMPLE_SQL, height=160, key="sql_text")
        submitted = st.form_submit_button("Run query", type="primary")
    if not submitted:
        return
    try:
        result = client().sql(statement)
    except ApiError as error:
        show_error(error)
        return
    shown = f"{result['row_count']:,} rows in {result['elapsed_ms']:.0f} ms"
    if result["truncated"]:
        shown += " (truncated)"
    with st.container(key="sql_result"):
        st.caption(shown)
        st.dataframe(_frame(result), hide_index=True, width="stretch")
