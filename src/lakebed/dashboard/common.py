"""What every page shares: the API client, and errors shown as messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from lakebed.dashboard.client import ApiClient, ApiError

T = TypeVar("T")
# Colours by layer, the same on every chart.
LAYER_COLOURS = {
    "bronze": "#b0722c",
    "quarantine": "#c0392b",
    "silver": "#7f8c8d",
    "gold": "#d4a017",
}


@st.cache_resource
def client() -> ApiClient:
    return ApiClient()


def fetch(call: Callable[[ApiClient], T]) -> T | None:
    """``call``'s result, or None after showing the API's message as an error box."""
    try:
        return call(client())
    except ApiError as error:
        show_error(error)
        return None


def show_error(error: ApiError) -> None:
    if error.status in (401, 403, 404, 422, 400):
        st.error(str(error), icon=":material/block:")
    elif error.status is not None and error.status >= 500:
        st.warning(str(error), icon=":material/hourglass_empty:")
    else:
        st.error(str(error), icon=":material/cloud_off:")


def note(message: str | None) -> None:
    """The API's explanation of an empty view (what to run), if it gave one."""
    if message:
        st.info(message, icon=":material/info:")


def plot(figure: Any, key: str, height: int = 340) -> None:
    figure.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=height)
    st.plotly_chart(figure, key=key, width="stretch")
