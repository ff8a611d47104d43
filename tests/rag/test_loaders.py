"""Loaders per format: heading paths, anchors, access groups, and unreadable files."""

from __future__ import annotations

import itertools
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from lakebed.rag.chunking import chunk_document
from lakebed.rag.index import SHIPPED_CORPUS
from lakebed.rag.loaders import AccessRules, LoadError, load_corpus

MARKDOWN = """# Chargeback Handling

Every dispute gets a case id.

## Deadlines

Respond within 20 days.

```
# not a heading inside a fence
```

### Evidence

Attach the receipt.

## Reason codes

Code 4837 means no cardholder authorisation.
"""

HTML = """<html><head><title>Page title</title><style>h1 {color: red}</style></head>
<body><h1>On-call Guide</h1><p>Welcome to on-call.</p>
<h2 id="sev1">Severity 1</h2><p>Page the incident commander.</p>
<ul><li>Open a bridge.</li><li>Post in #incidents.</li></ul>
<h3>Escalation</h3><table><tr><td>after</td><td>15 min</td></tr></table>
<script>var x = "# not text";</script></body></html>
"""

TEXT = """Access Requests
===============

Ask your manager first.

Approvals
---------

Two approvers are needed for production.
"""


def write_docx(path: Path) -> None:
    document = docx.Document()
    document.add_heading("Model Governance", level=1)
    document.add_paragraph("Models are owned by the fraud team.")
    document.add_heading("Validation", level=2)
    document.add_paragraph("Every model is validated before promotion.")
    document.add_paragraph("Average precision must not drop.", style="List Bullet")
    document.add_heading("Backtesting", level=3)
    document.add_paragraph("Backtest on the last four weeks.")
    document.save(str(path))


def write_pdf(path: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for level, title, body, new_page in [
        (0, "Retention Policy", "Data is kept as long as the law asks.", True),
        (1, "Raw card data", "Raw card numbers are never stored.", False),
        (1, "Transaction history", "Seven years, then deleted.", True),
        (2, "Archive tier", "Older than a year goes to the archive.", False),
    ]:
        if new_page:
            pdf.add_page()
        pdf.start_section(title, level=level)
        pdf.set_font("Helvetica", style="B", size=14)
        pdf.cell(text=title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "ops").mkdir(parents=True)
    (root / "exec").mkdir()
    (root / "ops" / "chargebacks.md").write_text(MARKDOWN)
    (root / "ops" / "oncall.html").write_text(HTML)
    (root / "access.txt").write_text(TEXT)
    write_docx(root / "exec" / "governance.docx")
    write_pdf(root / "ops" / "retention.pdf")
    (root / "access.toml").write_text(
        'default = ["all"]\n'
        '[[rule]]\npattern = "exec/*"\ngroups = ["executives"]\n'
        '[[rule]]\npattern = "ops/*.html"\ngroups = ["engineering", "executives"]\n'
    )
    return root


def by_id(root: Path) -> dict[str, list[tuple[tuple[str, ...], str, str]]]:
    report = load_corpus(root)
    assert report.failures == []
    return {
        d.doc_id: [(s.heading_path, s.anchor, s.text) for s in d.sections] for d in report.documents
    }


def test_markdown_sections_follow_headings_and_ignore_fences(corpus: Path) -> None:
    sections = by_id(corpus)["ops/chargebacks.md"]
    assert [s[0] for s in sections] == [
        ("Chargeback Handling",),
        ("Chargeback Handling", "Deadlines"),
        ("Chargeback Handling", "Deadlines", "Evidence"),
        ("Chargeback Handling", "Reason codes"),
    ]
    assert sections[1][1] == "#deadlines"
    assert "# not a heading inside a fence" in sections[1][2]
    assert sections[3][2] == "Code 4837 means no cardholder authorisation."


def test_html_sections_use_ids_and_skip_scripts(corpus: Path) -> None:
    sections = by_id(corpus)["ops/oncall.html"]
    assert [s[0] for s in sections] == [
        ("On-call Guide",),
        ("On-call Guide", "Severity 1"),
        ("On-call Guide", "Severity 1", "Escalation"),
    ]
    assert sections[1][1] == "#sev1"  # the page's own id, so the link lands there
    assert sections[2][1] == "#escalation"
    assert "- Open a bridge." in sections[1][2]
    assert "15 min" in sections[2][2]
    assert all("not text" not in s[2] for s in sections)


def test_text_sections_are_underlined_headings(corpus: Path) -> None:
    sections = by_id(corpus)["access.txt"]
    assert [s[0] for s in sections] == [
        ("Access Requests",),
        ("Access Requests", "Approvals"),
    ]
    assert sections[1][2] == "Two approvers are needed for production."


def test_docx_sections_use_heading_styles(corpus: Path) -> None:
    sections = by_id(corpus)["exec/governance.docx"]
    assert [s[0] for s in sections] == [
        ("Model Governance",),
        ("Model Governance", "Validation"),
        ("Model Governance", "Validation", "Backtesting"),
    ]
    assert "- Average precision must not drop." in sections[1][2]


def test_pdf_sections_follow_the_outline_with_page_anchors(corpus: Path) -> None:
    sections = by_id(corpus)["ops/retention.pdf"]
    assert [(s[0], s[1]) for s in sections] == [
        (("Retention Policy",), "#page=1"),
        (("Retention Policy", "Raw card data"), "#page=1"),
        (("Retention Policy", "Transaction history"), "#page=2"),
        (("Retention Policy", "Transaction history", "Archive tier"), "#page=2"),
    ]
    assert sections[1][2] == "Raw card numbers are never stored."


def test_access_rules_first_match_wins_else_default(corpus: Path) -> None:
    groups = {d.doc_id: d.groups for d in load_corpus(corpus).documents}
    assert groups["exec/governance.docx"] == ("executives",)
    assert groups["ops/oncall.html"] == ("engineering", "executives")
    assert groups["ops/chargebacks.md"] == ("all",)
    assert AccessRules.load(corpus / "ops").default == ("all",)  # no file: everyone


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ('default = "all"\n', "non-empty list"),
        ("default = []\n", "non-empty list"),
        ('defualt = ["all"]\n', "needs `default`"),
        ('default = ["all"]\n[[rules]]\npattern = "exec/*"\ngroups = ["executives"]\n', "rules"),
        ('default = ["all"]\n[[rule]]\npatern = "exec/*"\ngroups = ["executives"]\n', "exactly"),
        ("default = [", "not valid access rules"),
    ],
)
def test_invalid_access_rules_refuse_to_load(corpus: Path, rules: str, says: str) -> None:
    """A misspelt rule must not silently leave a document readable by everyone."""
    (corpus / "access.toml").write_text(rules)
    with pytest.raises(LoadError, match=says):
        load_corpus(corpus)


def test_unreadable_files_are_reported_and_the_rest_loads(corpus: Path) -> None:
    (corpus / "ops" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (corpus / "ops" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (corpus / "ops" / "broken.docx").write_bytes(b"PK not a zip")
    (corpus / "ops" / "sheet.xlsx").write_bytes(b"xx")
    (corpus / "ops" / "empty.md").write_text("\n\n")
    report = load_corpus(corpus)
    reasons = dict(report.failures)
    assert set(reasons) == {
        "ops/broken.pdf",
        "ops/latin1.txt",
        "ops/broken.docx",
        "ops/sheet.xlsx",
        "ops/empty.md",
    }
    assert "UTF-8" in reasons["ops/latin1.txt"]
    assert "unsupported" in reasons["ops/sheet.xlsx"]
    assert "no text" in reasons["ops/empty.md"]
    assert len(report.documents) == 5


def test_document_ids_are_stable_and_hashes_follow_content_and_groups(corpus: Path) -> None:
    before = {d.doc_id: d.content_hash for d in load_corpus(corpus).documents}
    (corpus / "ops" / "chargebacks.md").write_text(MARKDOWN + "\nOne more line.\n")
    (corpus / "access.toml").write_text('default = ["all"]\n')
    after = {d.doc_id: d.content_hash for d in load_corpus(corpus).documents}
    assert set(before) == set(after)
    changed = {d for d in before if before[d] != after[d]}
    # the edited file, and the two whose groups changed
    assert changed == {"ops/chargebacks.md", "exec/governance.docx", "ops/oncall.html"}


def test_chunks_stay_inside_sections_with_overlap(corpus: Path) -> None:
    long = "# Title\n\n## Part\n\n" + " ".join(f"Sentence number {i} is here." for i in range(200))
    (corpus / "long.md").write_text(long + "\n\n## Next\n\nShort tail.\n")
    document = next(d for d in load_corpus(corpus).documents if d.doc_id == "long.md")
    chunks = chunk_document(document, chunk_size=300, chunk_overlap=60)
    assert all(len(c.text) <= 300 for c in chunks)
    assert chunks[-1].heading_path == ("Title", "Next")
    assert chunks[-1].text == "Short tail."
    part = [c for c in chunks if c.heading_path == ("Title", "Part")]
    assert len(part) > 10
    # adjacent chunks share text, so a sentence cut at a boundary is whole in one of them
    assert all(a.text[-30:].split()[-1] in b.text for a, b in itertools.pairwise(part))
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert {c.n_chunks for c in chunks} == {len(chunks)}
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_the_shipped_corpus_loads_in_every_format() -> None:
    report = load_corpus(SHIPPED_CORPUS)
    assert report.failures == []
    formats = {d.format for d in report.documents}
    assert formats >= {"md", "html", "pdf", "docx", "txt"}
    assert len(report.documents) >= 15
    assert all(len(d.sections) >= 2 for d in report.documents)
