"""Ask: a question answered from the internal documents as a chosen user (their access
groups apply in the vector store), with numbered citations that open the cited section,
and the retrieved passages on demand."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import streamlit as st

from lakebed.dashboard.client import ApiError
from lakebed.dashboard.common import client, fetch, show_error

MODES = ("hybrid", "dense", "bm25")


def render() -> None:
    st.title("Ask the documents")
    st.caption(
        "Answers come only from documents the chosen user may read; each sentence cites its "
        "source. Citations open the cited section."
    )
    known = fetch(lambda api: api.users())
    if known is None:
        return
    if known["tokens"]:
        st.info(
            "This API knows users by API tokens, which the dashboard does not hold: ask "
            "through `POST /ask` with your token."
        )
        return
    users = {u["name"]: u for u in known["users"]}
    if not users:
        st.info("no users are configured (rag.users_file)")
        return
    with st.form("ask"):
        name = st.selectbox(
            "Ask as",
            list(users),
            format_func=lambda n: (
                f"{n} ({', '.join(users[n]['groups'])}): {users[n]['description']}"
            ),
            key="ask_user",
        )
        question = st.text_input(
            "Question", placeholder="How do I replay a Kafka topic?", key="ask_question"
        )
        left, right = st.columns([3, 1])
        mode = left.radio("Retrieval", MODES, horizontal=True, key="ask_mode")
        passages = right.checkbox("show passages", key="ask_passages")
        submitted = st.form_submit_button("Ask", type="primary")
    if not submitted:
        return
    if not question.strip():
        st.error("Write a question first.")
        return
    try:
        with st.spinner("retrieving and answering..."):
            answer = client().ask(question, name, mode=mode, passages=True)
    except ApiError as error:
        show_error(error)
        return
    _answer(answer, name, passages)


def document_link(citation: dict[str, Any], user: str) -> str:
    """The reader page at the cited section (the anchor travels as a parameter: Streamlit
    pages do not scroll to URL fragments)."""
    _, _, anchor = citation["link"].partition("#")
    query = urlencode({"doc": citation["document"], "section": anchor, "user": user})
    return f"/document?{query}"


def _answer(answer: dict[str, Any], user: str, passages: bool) -> None:
    if answer["found"]:
        st.success(answer["answer"], icon=":material/check_circle:")
    else:
        st.warning(answer["answer"], icon=":material/search_off:")
    st.caption(f"{answer['method']} answer in {answer['elapsed_ms']:.0f} ms")
    if answer["citations"]:
        st.markdown("**Sources**")
        lines = [
            f"{c['number']}. [{c['title']} > {c['section']}]({document_link(c, user)}) "
            f"`{c['document']}`"
            for c in answer["citations"]
        ]
        st.markdown("\n".join(lines))
    if passages:
        with st.expander(f"{len(answer.get('passages') or [])} retrieved passages", expanded=True):
            for passage in answer.get("passages") or []:
                st.markdown(f"**{passage['rank']}. {passage['document']}** > {passage['section']}")
                st.text(passage["text"])
