"""The data catalog as documents: every gold model and column, from the dbt project's YAML.

The descriptions and tests written for dbt are the best documentation of the tables
there is, so the RAG service indexes them rather than a second copy that would drift.
Each model becomes one Markdown document (overview, tests, a section per column),
regenerated on every index run; an unchanged model gives an unchanged document, so
incremental indexing skips it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lakebed.lake.transform import DBT_PROJECT

CATALOG_LAYERS = ("gold", "silver")


def _tests(entry: dict[str, Any]) -> list[str]:
    names = []
    for test in entry.get("data_tests", entry.get("tests", [])) or []:
        if isinstance(test, str):
            names.append(test)
        elif isinstance(test, dict):
            name, spec = next(iter(test.items()))
            spec = spec or {}
            args = spec.get("arguments", spec) or {}
            detail = ", ".join(f"{k} {v}" for k, v in args.items() if k != "config")
            names.append(f"{name} ({detail})" if detail else name)
    return names


def model_markdown(layer: str, model: dict[str, Any]) -> str:
    name = model["name"]
    lines = [f"# Data catalog: {layer}.{name}", ""]
    lines += ["## Overview", "", " ".join(str(model.get("description", "")).split()), ""]
    lines += [f"Layer: {layer}. Query it as `{layer}.{name}` with `lakebed sql`.", ""]
    tests = _tests(model)
    if tests:
        lines += ["Model tests: " + "; ".join(tests) + ".", ""]
    columns = model.get("columns", []) or []
    if columns:
        names = ", ".join(str(c["name"]) for c in columns)
        lines += ["## Columns", "", f"{name} has {len(columns)} documented columns: {names}.", ""]
        for column in columns:
            lines += [f"### {name}.{column['name']}", ""]
            lines += [" ".join(str(column.get("description", "")).split()), ""]
            column_tests = _tests(column)
            if column_tests:
                lines += ["Tests: " + "; ".join(column_tests) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_catalog(folder: Path, project: Path = DBT_PROJECT) -> list[Path]:
    """(Re)write one document per documented model; stale documents are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "access.toml").write_text('default = ["all"]\n', encoding="utf-8")
    written = []
    for layer in CATALOG_LAYERS:
        for spec in sorted((project / "models" / layer).glob("*.yml")):
            doc = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
            for model in doc.get("models", []) or []:
                path = folder / layer / f"{model['name']}.md"
                path.parent.mkdir(parents=True, exist_ok=True)
                text = model_markdown(layer, model)
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    path.write_text(text, encoding="utf-8")
                written.append(path)
    for stale in set(folder.rglob("*.md")) - set(written):
        stale.unlink()
    return written
