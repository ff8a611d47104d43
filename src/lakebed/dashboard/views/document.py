"""The reader behind a citation: the cited section first, then the whole document, for a
user who may read it (the API answers "not found" otherwise, whether it exists or not)."""

from __future__ import annotations

import streamlit as st

from lakebed.dashboard.common import fetch


def render() -> None:
    params = st.query_params
    doc_id, anchor, user = params.get("doc"), params.get("section", ""), params.get("user")
    if not doc_id:
        st.title("Document")
        st.info("Open a citation on the Ask page to read the section it cites.")
        return
    document = fetch(lambda api: api.document(doc_id, user))
    if document is None:
        return
    st.title(document["title"])
    st.caption(
        f"`{document['document']}` · {document['format']} · readable by "
        f"{', '.join(document['groups'])} · opened as {user}"
    )
    sections = document["sections"]
    cited = next((s for s in sections if s["anchor"].lstrip("#") == anchor.lstrip("#")), None)
    if cited is not None:
        with st.container(border=True, key="cited_section"):
            st.markdown(f"**Cited section: {cited['heading']}**")
            st.markdown(cited["text"])
    elif anchor:
        st.warning(f"section #{anchor} is no longer in this document; it may have changed")
    with st.expander("Whole document", expanded=cited is None):
        for section in sections:
            st.markdown(f"#### {section['heading']}")
            st.markdown(section["text"])
