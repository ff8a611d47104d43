"""Loaders: any folder of Markdown, HTML, PDF, DOCX and text files into documents.

Each format keeps its own notion of structure, and each loader maps it to the same
thing, a list of sections with heading paths: ATX headings in Markdown, ``<h1>``..``<h4>``
in HTML, heading styles in DOCX, the outline (bookmarks) of a PDF, and underlined
(setext) headings in plain text. Structure matters because a chunk is only citable, and
often only understandable, with the headings above it.

A file that cannot be read is reported with the reason and skipped; the rest goes on.
Who may read a document comes from ``access.toml`` at the corpus root (first matching
pattern wins, else its ``default``); without one, every document is readable by ``all``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from lakebed.rag.documents import Document, Section, slugify

ACCESS_FILE = "access.toml"
EVERYONE = "all"


class LoadError(ValueError):
    """A file that is not a readable document of its format."""


@dataclass(frozen=True)
class AccessRules:
    default: tuple[str, ...]
    rules: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def groups_for(self, doc_id: str) -> tuple[str, ...]:
        for pattern, groups in self.rules:
            if fnmatch.fnmatchcase(doc_id, pattern):
                return groups
        return self.default

    @classmethod
    def load(cls, root: Path) -> AccessRules:
        path = root / ACCESS_FILE
        if not path.is_file():
            return cls(default=(EVERYONE,))
        # Strict: a misspelt key ("rules", "defualt") must not silently open everything.
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            unknown = set(raw) - {"default", "rule"}
            if unknown or "default" not in raw:
                raise LoadError(
                    f"{path}: needs `default` and optional [[rule]] tables only"
                    + (f", found {sorted(unknown)}" if unknown else "")
                )
            default = _groups(raw["default"], f"{path}: default")
            rules = []
            for rule in raw.get("rule", []):
                if not isinstance(rule, dict) or set(rule) != {"pattern", "groups"}:
                    raise LoadError(f"{path}: a rule needs exactly `pattern` and `groups`: {rule}")
                rules.append((str(rule["pattern"]), _groups(rule["groups"], f"{path}: {rule}")))
        except (tomllib.TOMLDecodeError, TypeError) as exc:
            # Guessing at access rules would be worse than indexing nothing.
            raise LoadError(f"{path}: not valid access rules: {exc}") from exc
        return cls(default=default, rules=tuple(rules))


def _groups(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(g, str) for g in value):
        raise LoadError(f"{where}: groups must be a non-empty list of strings, got {value!r}")
    return tuple(value)


@dataclass
class LoadReport:
    documents: list[Document] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def load_corpus(root: Path, prefix: str = "") -> LoadReport:
    """Every supported file under ``root``; ``prefix`` is put before each document id."""
    if not root.is_dir():
        raise LoadError(f"{root}: no such folder")
    access = AccessRules.load(root)
    report = LoadReport()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == ACCESS_FILE or any(part.startswith(".") for part in Path(rel).parts):
            continue
        loader = LOADERS.get(path.suffix.lower())
        if loader is None:
            report.failures.append((prefix + rel, f"unsupported format {path.suffix or '(none)'}"))
            continue
        try:
            report.documents.append(load_document(path, prefix + rel, access.groups_for(rel)))
        except Exception as exc:
            report.failures.append((prefix + rel, f"{type(exc).__name__}: {exc}"))
    return report


def load_document(path: Path, doc_id: str, groups: tuple[str, ...]) -> Document:
    data = path.read_bytes()
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"{path}: unsupported format {path.suffix}")
    title, sections = loader(path, data)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise LoadError("no text found")
    return Document(
        doc_id=doc_id,
        title=title,
        path=doc_id,
        format=path.suffix.lower().lstrip("."),
        groups=groups,
        modified=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        content_hash=hashlib.sha256(data + "\x1f".join(groups).encode()).hexdigest(),
        sections=tuple(sections),
    )


class _Outline:
    """Builds sections from a stream of headings and text, for the headed formats."""

    def __init__(self, default_title: str) -> None:
        self.title = default_title
        self.stack: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.sections: list[Section] = []
        self.anchor = ""
        self._titled = False

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self._flush()
        if not self._titled:
            self.title, self._titled = text, True
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))
        self.anchor = anchor if anchor is not None else "#" + slugify(text)

    def text(self, text: str) -> None:
        self.parts.append(text)

    def _flush(self) -> None:
        body = re.sub(r"\n{3,}", "\n\n", "".join(self.parts)).strip()
        self.parts = []
        if body:
            path = tuple(t for _, t in self.stack) or (self.title,)
            self.sections.append(Section(path, self.anchor, body))

    def finish(self) -> tuple[str, list[Section]]:
        self._flush()
        return self.title, self.sections


_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def load_markdown(path: Path, data: bytes) -> tuple[str, list[Section]]:
    outline = _Outline(path.stem)
    in_fence = False
    for line in _decode(data).splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _ATX.match(line)
        if match:
            outline.heading(len(match.group(1)), match.group(2))
        else:
            outline.text(line + "\n")
    return outline.finish()


def load_text(path: Path, data: bytes) -> tuple[str, list[Section]]:
    outline = _Outline(path.stem)
    lines = _decode(data).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() and len(underline) >= 3 and set(underline) in ({"="}, {"-"}):
            outline.heading(1 if underline[0] == "=" else 2, line)
            i += 2
            continue
        outline.text(line + "\n")
        i += 1
    return outline.finish()


class _HTMLSections(HTMLParser):
    _HEADINGS: ClassVar[dict[str, int]] = {"h1": 1, "h2": 2, "h3": 3, "h4": 4}
    _BLOCKS: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "li", "tr", "br", "table", "ul", "ol", "section", "pre", "blockquote"}
    )
    _SKIP: ClassVar[frozenset[str]] = frozenset(
        {"script", "style", "head", "title", "nav", "template"}
    )

    def __init__(self, default_title: str) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = _Outline(default_title)
        self.heading_level: int | None = None
        self.heading_id: str | None = None
        self.heading_text: list[str] = []
        self.skip_depth = 0
        self.page_title = ""
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in self._SKIP:
            self.skip_depth += 1
        elif tag in self._HEADINGS:
            self.heading_level = self._HEADINGS[tag]
            self.heading_id = dict(attrs).get("id")
            self.heading_text = []
        elif tag in self._BLOCKS:
            self.outline.text("\n- " if tag == "li" else "\n\n" if tag == "p" else "\n")
        elif tag in {"td", "th"}:
            self.outline.text(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self._SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self._HEADINGS and self.heading_level is not None:
            anchor = f"#{self.heading_id}" if self.heading_id else None
            self.outline.heading(self.heading_level, "".join(self.heading_text), anchor)
            self.heading_level = None
        elif tag in {"p", "ul", "ol", "table"}:
            self.outline.text("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.page_title += data
        if self.skip_depth:
            return
        if self.heading_level is not None:
            self.heading_text.append(data)
        else:
            self.outline.text(re.sub(r"\s+", " ", data))


def load_html(path: Path, data: bytes) -> tuple[str, list[Section]]:
    parser = _HTMLSections(path.stem)
    parser.feed(_decode(data))
    parser.close()
    if not parser.outline._titled and parser.page_title.strip():
        parser.outline.title = " ".join(parser.page_title.split())
    title, sections = parser.outline.finish()
    return title, [Section(s.heading_path, s.anchor, _tidy(s.text)) for s in sections]


def load_docx(path: Path, data: bytes) -> tuple[str, list[Section]]:
    import docx  # python-docx; imported here so the rest of Lakebed does not pay for it

    document = docx.Document(io.BytesIO(data))  # the bytes that were hashed, not a re-read
    outline = _Outline(document.core_properties.title or path.stem)
    for block in _docx_blocks(document):
        if isinstance(block, str):
            outline.text(block + "\n\n")
            continue
        style, text = block
        level = _docx_heading_level(style)
        if level is not None:
            outline.heading(level, text)
        elif style.startswith("List"):
            outline.text(f"- {text}\n")
        elif text.strip():
            outline.text(text + "\n\n")
    return outline.finish()


def _docx_heading_level(style: str) -> int | None:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else None


def _docx_blocks(document: Any) -> Iterator[tuple[str, str] | str]:
    """Paragraphs as (style, text) and tables as text, in document order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            yield (item.style.name if item.style is not None else "", item.text)
        elif isinstance(item, Table):
            yield "\n".join(
                " | ".join(cell.text.strip() for cell in row.cells) for row in item.rows
            )


def load_pdf(path: Path, data: bytes) -> tuple[str, list[Section]]:
    """Sections from the outline; a PDF without one gets a section per page.

    The outline gives each heading's title and page, not its place on the page, so the
    title is looked up in the page's text from where the previous heading was found.
    """
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    pages = _without_running_lines([_tidy(page.extract_text() or "") for page in reader.pages])
    meta_title = (reader.metadata.title if reader.metadata else None) or path.stem
    headings = list(_pdf_outline(reader, reader.outline, 1))
    if not headings:
        return meta_title, [
            Section((meta_title, f"Page {n}"), f"#page={n}", text)
            for n, text in enumerate(pages, start=1)
        ]
    text = ""
    starts = []
    for page_text in pages:
        starts.append(len(text))
        text += page_text + "\n"
    marks: list[tuple[int, int, int, str]] = []  # position, text end, level, title
    cursor = 0
    for level, title, page_index in headings:
        start = max(cursor, starts[page_index] if page_index < len(starts) else cursor)
        position = _find_heading(text, title, start)
        if position is None:
            continue  # an outline entry not printed on its page: keep its text in the last
        marks.append((position, position + len(title), level, title))
        cursor = position + len(title)
    outline = _Outline(meta_title)
    if marks and marks[0][0] > 0:
        outline.text(text[: marks[0][0]])
    for i, (_, end, level, title) in enumerate(marks):
        page = next(n for n, at in reversed(list(enumerate(starts, start=1))) if at <= end - 1)
        outline.heading(level, title, f"#page={page}")
        outline.text(text[end : marks[i + 1][0] if i + 1 < len(marks) else len(text)])
    return outline.finish()


def _without_running_lines(pages: list[str]) -> list[str]:
    """Drop running headers and footers ("Internal - page 3 of 7"): lines that, digits
    aside, recur on most pages would otherwise land in the middle of sections."""
    if len(pages) < 2:
        return pages

    def shape(line: str) -> str:
        return re.sub(r"\d+", "#", line.strip())

    counts: dict[str, int] = {}
    for page in pages:
        for key in {shape(line) for line in page.splitlines() if line.strip()}:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, n in counts.items() if n >= max(2, 0.6 * len(pages))}
    return [
        "\n".join(line for line in page.splitlines() if shape(line) not in running)
        for page in pages
    ]


def _find_heading(text: str, title: str, start: int) -> int | None:
    # Extracted text may break a long heading over lines: match whitespace loosely.
    pattern = r"\s+".join(re.escape(word) for word in title.split())
    match = re.compile(pattern).search(text, start)
    return match.start() if match else None


def _pdf_outline(reader: Any, items: list[Any], level: int) -> Iterator[tuple[int, str, int]]:
    for item in items:
        if isinstance(item, list):
            yield from _pdf_outline(reader, item, level + 1)
        else:
            yield level, str(item.title), reader.get_destination_page_number(item)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text (byte {exc.start})") from exc


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


Loader = Callable[[Path, bytes], tuple[str, list[Section]]]
LOADERS: dict[str, Loader] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".docx": load_docx,
    ".pdf": load_pdf,
}
