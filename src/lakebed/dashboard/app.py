"""The Streamlit entry point (``streamlit run``; ``lakebed dashboard`` does it for you).

Four pages over the API, plus a reader for cited documents. Every page renders on an empty
data home: what is missing is said in words, with the command that makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from lakebed.dashboard.views import alerts, ask, document, lakehouse, models

HOME = "lakehouse"


def main() -> None:
    st.set_page_config(page_title="Lakebed", page_icon=":ocean:", layout="wide")

    def page(render: Callable[[], None], title: str, icon: str, path: str) -> Any:
        return st.Page(
            render, title=title, icon=f":material/{icon}:", url_path=path, default=path == HOME
        )

    pages = {
        "Platform": [
            page(lakehouse.render, "Lakehouse", "database", "lakehouse"),
            page(models.render, "Fraud model", "model_training", "models"),
            page(alerts.render, "Live alerts", "notifications_active", "alerts"),
            page(ask.render, "Ask", "question_answer", "ask"),
        ],
        "Reader": [page(document.render, "Document", "description", "document")],
    }
    st.navigation(pages).run()


main()
