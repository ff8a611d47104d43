"""The Lakebed dashboard: a Streamlit app over the HTTP API (``lakebed dashboard``)."""
