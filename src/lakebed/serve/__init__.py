"""Read-only SQL serving over the silver and gold tables.

``guard`` decides what SQL may run, ``engine`` runs it (``SqlEngine``, with DuckDB for the
local profile) and ``api`` puts it behind HTTP. Nothing here imports the CLI, and the core
packages never import ``serve``.
"""
