"""Render the PDF and DOCX documents of the RAG service's sample corpus from text sources.

Why this exists: the corpus in ``src/lakebed/rag/corpus/`` has to contain real PDF and DOCX
files, so the loaders meet each format's own structure (a PDF's outline, a DOCX's heading
styles), but binary files cannot be reviewed or edited in a diff. Their text therefore
lives in ``scripts/corpus_sources/`` as Markdown-like sources, one per document, named
after the file they become (``governance/model-validation-report-v5.pdf.md`` becomes
``governance/model-validation-report-v5.pdf``), and this script renders them.

Source syntax (one construct per line; anything else is paragraph text, and consecutive
text lines are joined into one paragraph)::

    # Document title          (exactly once, first)
    ## Section
    ### Subsection
    - bullet item
    1. numbered item
    | cell | cell |          (a table; a |---| separator row is skipped)

Rendering:

- PDF (fpdf2, core font Helvetica, ASCII only): every heading is an outline entry
  (bookmark), the title at level 0, sections at 1, subsections at 2, and is printed on the
  page with exactly the outline's text, in bold and bigger.
- DOCX (python-docx): the title in style "Heading 1", sections "Heading 2", subsections
  "Heading 3", bullets "List Bullet", numbered items "List Number", tables "Table Grid".

The output is deterministic: fixed creation dates in both formats and fixed timestamps in
the DOCX zip, so rebuilding an unchanged source gives the same bytes.

Usage::

    .venv/bin/python scripts/build_corpus.py           # (re)write every rendered document
    .venv/bin/python scripts/build_corpus.py --check   # exit 1 if any is missing or stale
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docx
from docx.shared import Pt
from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "corpus_sources"
CORPUS = ROOT / "src" / "lakebed" / "rag" / "corpus"
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
AUTHOR = "Northwind Payments"
FORMATS = (".pdf", ".docx")

# What the core PDF fonts cannot encode, spelled in ASCII.
ASCII_SPELLING = {
    "\u2014": "-",
    "\u2013": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u2192": "->",
    "\u2265": ">=",
    "\u2264": "<=",
    "\u00d7": "x",
    "\u20ac": "EUR ",
    "\u00a0": " ",
}


@dataclass(frozen=True)
class Heading:
    level: int  # 1: the document title, 2: a section, 3: a subsection
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Item:
    text: str
    number: int | None  # None: a bullet


@dataclass(frozen=True)
class Table:
    rows: tuple[tuple[str, ...], ...]


Block = Heading | Paragraph | Item | Table

_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*$")
_BULLET = re.compile(r"^-\s+(.+)$")
_NUMBERED = re.compile(r"^(\d+)\.\s+(.+)$")
_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+$")


class SourceError(ValueError):
    """A source that does not follow the syntax in the module docstring."""


def parse(text: str, where: str) -> list[Block]:
    """The blocks of a source, checked: one title first, unique headings, no skipped level."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    table: list[tuple[str, ...]] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Paragraph(" ".join(paragraph)))
            paragraph.clear()
        if table:
            blocks.append(Table(tuple(table)))
            table.clear()

    for line in text.splitlines():
        line = line.strip()
        if not line:
            flush()
        elif line.startswith("|"):
            if paragraph:
                flush()
            if not _SEPARATOR.match(line):
                table.append(tuple(cell.strip() for cell in line.strip("|").split("|")))
        elif heading := _HEADING.match(line):
            flush()
            blocks.append(Heading(len(heading.group(1)), heading.group(2)))
        elif bullet := _BULLET.match(line):
            flush()
            blocks.append(Item(bullet.group(1), None))
        elif numbered := _NUMBERED.match(line):
            flush()
            blocks.append(Item(numbered.group(2), int(numbered.group(1))))
        else:
            if table:
                flush()
            paragraph.append(line)
    flush()
    _check_structure(blocks, where)
    return blocks


def _check_structure(blocks: list[Block], where: str) -> None:
    headings = [b for b in blocks if isinstance(b, Heading)]
    if not blocks or not isinstance(blocks[0], Heading) or blocks[0].level != 1:
        raise SourceError(f"{where}: the first line must be the title, '# Title'")
    if sum(h.level == 1 for h in headings) != 1:
        raise SourceError(f"{where}: exactly one '# Title' allowed")
    seen: set[str] = set()
    previous = 1
    for heading in headings:
        if heading.text in seen:
            raise SourceError(f"{where}: heading {heading.text!r} appears twice")
        if heading.level > previous + 1:
            raise SourceError(f"{where}: heading {heading.text!r} skips a level")
        seen.add(heading.text)
        previous = heading.level


def ascii_text(text: str, where: str) -> str:
    for char, spelling in ASCII_SPELLING.items():
        text = text.replace(char, spelling)
    if not text.isascii():
        bad = sorted({c for c in text if not c.isascii()})
        raise SourceError(f"{where}: characters a core PDF font cannot show: {bad}")
    return text


class _CorpusPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 6, f"{AUTHOR} - internal - page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


_PDF_HEADING_SIZE = {1: 18, 2: 14, 3: 12}
_PDF_BODY_SIZE = 10.5
_PDF_LINE = 5.4


def render_pdf(blocks: list[Block], where: str) -> bytes:
    title = next(b.text for b in blocks if isinstance(b, Heading))
    pdf = _CorpusPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(ascii_text(title, where))
    pdf.set_author(AUTHOR)
    pdf.set_creator("lakebed scripts/build_corpus.py")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    for block in blocks:
        if isinstance(block, Heading):
            text = ascii_text(block.text, where)
            if block.level > 1:
                pdf.ln(3)
            if pdf.get_y() > pdf.h - 45:  # keep a heading with the text below it
                pdf.add_page()
            pdf.start_section(text, level=block.level - 1)
            pdf.set_font("Helvetica", "B", _PDF_HEADING_SIZE[block.level])
            pdf.multi_cell(0, _PDF_HEADING_SIZE[block.level] * 0.5, text)
            pdf.ln(2)
        elif isinstance(block, Paragraph):
            pdf.set_font("Helvetica", size=_PDF_BODY_SIZE)
            pdf.multi_cell(0, _PDF_LINE, ascii_text(block.text, where))
            pdf.ln(2)
        elif isinstance(block, Item):
            marker = "-" if block.number is None else f"{block.number}."
            pdf.set_font("Helvetica", size=_PDF_BODY_SIZE)
            pdf.set_x(pdf.l_margin + 4)
            pdf.multi_cell(0, _PDF_LINE, f"{marker} {ascii_text(block.text, where)}")
            pdf.ln(1)
        else:
            pdf.set_font("Helvetica", size=9)
            with pdf.table(line_height=4.8, first_row_as_headings=True) as table:
                for row in block.rows:
                    cells = table.row()
                    for cell in row:
                        cells.cell(ascii_text(cell, where))
            pdf.ln(3)
    return bytes(pdf.output())


def render_docx(blocks: list[Block]) -> bytes:
    title = next(b.text for b in blocks if isinstance(b, Heading))
    document = docx.Document()
    properties = document.core_properties
    properties.title = title
    properties.author = AUTHOR
    properties.last_modified_by = AUTHOR
    properties.created = FIXED_DATE.replace(tzinfo=None)
    properties.modified = FIXED_DATE.replace(tzinfo=None)
    properties.revision = 1
    document.styles["Normal"].font.size = Pt(10.5)
    for block in blocks:
        if isinstance(block, Heading):
            document.add_heading(block.text, level=block.level)
        elif isinstance(block, Paragraph):
            document.add_paragraph(block.text)
        elif isinstance(block, Item):
            style = "List Bullet" if block.number is None else "List Number"
            document.add_paragraph(block.text, style=style)
        else:
            table = document.add_table(rows=len(block.rows), cols=len(block.rows[0]))
            table.style = "Table Grid"
            for cells, values in zip(table.rows, block.rows, strict=True):
                for cell, value in zip(cells.cells, values, strict=True):
                    cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip_times(buffer.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same zip with every member dated FIXED_DATE (python-docx stamps the clock)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(member, source.read(info.filename))
    return out.getvalue()


def sources() -> Iterator[tuple[Path, Path]]:
    """Each source with the corpus file it renders to."""
    for source in sorted(SOURCES.rglob("*.md")):
        target = source.relative_to(SOURCES).with_suffix("")
        if target.suffix not in FORMATS:
            raise SourceError(f"{source}: name it <document>.pdf.md or <document>.docx.md")
        yield source, CORPUS / target


def render(source: Path, target: Path) -> bytes:
    where = str(source.relative_to(ROOT))
    blocks = parse(source.read_text(encoding="utf-8"), where)
    return render_pdf(blocks, where) if target.suffix == ".pdf" else render_docx(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="Only report documents that are missing or stale."
    )
    args = parser.parse_args(argv)
    stale: list[str] = []
    for source, target in sources():
        data = render(source, target)
        name = target.relative_to(CORPUS).as_posix()
        if target.is_file() and target.read_bytes() == data:
            print(f"up to date  {name}")
            continue
        if args.check:
            stale.append(name)
            print(f"stale       {name}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"written     {name} ({len(data):,} bytes)")
    if stale:
        print(f"{len(stale)} document(s) out of date: run scripts/build_corpus.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
