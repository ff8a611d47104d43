"""Fraud model: the registered versions and the champion beside the handbook's published
results, and for a chosen version its ROC and precision-recall curves and feature
importance."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from lakebed.dashboard.common import fetch, note, plot

METRICS = ["auc_roc", "average_precision", "card_precision_at_100"]
NUMBERS = {
    "auc_roc": st.column_config.NumberColumn("AUC ROC", format="%.3f"),
    "average_precision": st.column_config.NumberColumn("AP", format="%.3f"),
    "card_precision_at_100": st.column_config.NumberColumn("CP@100", format="%.3f"),
}


def render() -> None:
    st.title("Fraud model")
    st.caption(
        "Trained on the handbook's protocol (a training week, a 7-day delay, a test week); "
        "scored by AUC ROC, Average Precision and Card Precision@100."
    )
    registry = fetch(lambda api: api.models())
    if registry is None:
        return
    note(registry.get("message"))
    versions = registry["versions"]
    handbook = pd.DataFrame(registry["handbook"], columns=["model", *METRICS])
    if versions:
        _champion(registry, versions)
    left, right = st.columns(2)
    with left:
        st.markdown("**Our versions** (test week of the training window)")
        if versions:
            ours = pd.DataFrame(versions)[["version", "title", "champion", *METRICS]]
            st.dataframe(
                ours, hide_index=True, width="stretch", key="versions", column_config=NUMBERS
            )
        else:
            st.info("no version yet")
    with right:
        st.markdown("**The handbook's published results** (its own simulated data)")
        st.dataframe(
            handbook, hide_index=True, width="stretch", key="handbook", column_config=NUMBERS
        )
    if versions and versions[0].get("training_window"):
        st.caption(f"Window of the newest version: {versions[0]['training_window']}")
    if versions:
        _compare(versions, handbook)
        _evaluation(versions, registry.get("champion"))


def _champion(registry: dict[str, Any], versions: list[dict[str, Any]]) -> None:
    champion = next((v for v in versions if v["champion"]), None)
    if champion is None:
        return
    columns = st.columns(4)
    columns[0].metric("champion", f"v{champion['version']} · {champion['title']}")
    for column, metric, label in zip(
        columns[1:], METRICS, ("AUC ROC", "Average Precision", "Card Precision@100"), strict=True
    ):
        value = champion[metric]
        column.metric(label, "n/a" if value is None else f"{value:.3f}")


def _compare(versions: list[dict[str, Any]], handbook: pd.DataFrame) -> None:
    ours = pd.DataFrame(versions)
    ours = ours.assign(model=ours["title"] + " v" + ours["version"], source="Lakebed")
    theirs = handbook.assign(source="handbook")
    both = pd.concat([ours[["model", "source", *METRICS]], theirs[["model", "source", *METRICS]]])
    long = both.melt(id_vars=["model", "source"], value_vars=METRICS, var_name="metric")
    figure = px.bar(
        long, x="metric", y="value", color="model", pattern_shape="source", barmode="group",
        title="Ours beside the handbook (hatched: the handbook's published results)",
        category_orders={"metric": METRICS},
    )  # fmt: skip
    figure.update_yaxes(range=[0, 1])
    plot(figure, "compare", height=420)


def _evaluation(versions: list[dict[str, Any]], champion: str | None) -> None:
    labels = {v["version"]: f"v{v['version']} · {v['title']}" for v in versions}
    order = list(labels)
    chosen = st.selectbox(
        "Curves and importance of version",
        order,
        index=order.index(champion) if champion in order else 0,
        format_func=labels.__getitem__,
        key="version",
    )
    evaluation = fetch(lambda api: api.evaluation(chosen))
    if evaluation is None:
        return
    left, middle, right = st.columns(3)
    with left:
        roc = go.Figure(go.Scatter(x=evaluation["roc"]["x"], y=evaluation["roc"]["y"], name="ROC"))
        roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dot"}))
        roc.update_layout(
            title="ROC", xaxis_title="false positive rate", yaxis_title="true positive rate"
        )
        plot(roc, "roc")
    with middle:
        curve = evaluation["precision_recall"]
        pr = go.Figure(go.Scatter(x=curve["x"], y=curve["y"], name="precision-recall"))
        rate = evaluation["fraud_rate"]
        pr.add_trace(go.Scatter(x=[0, 1], y=[rate, rate], name="chance", line={"dash": "dot"}))
        pr.update_layout(title="Precision-recall", xaxis_title="recall", yaxis_title="precision")
        plot(pr, "precision_recall")
    with right:
        importance = pd.DataFrame(
            list(evaluation["importance"].items()), columns=["feature", "mean score drop"]
        ).iloc[::-1]
        figure = px.bar(
            importance, x="mean score drop", y="feature", orientation="h",
            title="Feature importance",
        )  # fmt: skip
        plot(figure, "importance")
