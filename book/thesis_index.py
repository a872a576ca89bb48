#!/usr/bin/env python
r"""Generate ``book/thesis_index.md``: every numbered item of the thesis, where the book runs it, the library
code that implements it, and whether a check or an erratum stands there.

Usage (from the repository root, with the project's virtual environment)::

    python book/thesis_index.py            # (re)write book/thesis_index.md
    python book/thesis_index.py --check    # exit 1 if book/thesis_index.md is not what the sources give

``book/build.py`` calls :func:`write_index` before it executes anything, so a build that renders always
renders an index made from the sources it renders; ``tests/test_thesis_index.py`` checks that the page in
the repository is up to date.

Where the index comes from
--------------------------
*The items.* :data:`THESIS_ITEMS` is the thesis's own numbering (kind and number, in the thesis's order):
its table of contents of numbered items, typed once. Every entry must have exactly one *home* in the
chapters ``notebooks/NN_slug.md``, or the generator fails naming the item:

- a statement or an algorithm: the sphinx-proof block that states it, ```` ```{prf:definition} 1.1.4 (φ-layer)````
  with ``:label: def-1-1-4`` (the conventions of ``book/sources.py``); its title is the name in parentheses;
- a figure: the code cell that saves it, ``ch.figure(fig, "ch1_figure_1_1")`` (thesis Figure 1.1; a cell
  that saves ``"ch4_figures_2_2_and_2_3"`` is the home of Figures 2.2 and 2.3); it is linked through the
  anchor of the section the cell stands in, its title is the one the cell passes (``title="Figure 1.1: ..."``).

A numbered block that :data:`THESIS_ITEMS` does not list, or an item stated twice, is an error too.
Blocks with a word label (``def-elbo``) are the book's own and are not indexed.

*Library.* Every module, class, method and function docstring of ``thesis_lib/**/*.py`` (read with :mod:`ast`,
nothing is imported) whose paragraph starting ``Thesis:`` names the item; asides in parentheses are left out
(``Thesis: Definition 1.2.3 (estimated by Definition 1.2.4, ...)`` implements Definition 1.2.3).
Lists and ranges count: ``Definitions 2.3.1-2.3.3``, ``Propositions 1.3.12 and 1.3.13``.

*Check.* A code cell that contains an ``assert`` statement (an executed cell: a failing assertion fails the
build) and follows the item in the item's section: after its block (or figure cell) and before the next
heading of the same or a higher level than the heading the item stands under, or before the next subsection
that is home to another item. Items stated one after the other in a section share its checks.

*Erratum.* An entry of the errata chapter (``notebooks/NN_errata.md``): a target ``(errata-eN)=`` followed by
a heading; the items the heading names (``### E23 · Definitions 2.1.1, 2.1.2, 2.3.1, 2.3.2: ...``, or a
label such as ``def-1-1-4``) have that erratum. The typographical notes at the end of that chapter are not
indexed.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sources import BOOK_DIR, LIB_DIR, NOTEBOOKS_DIR, PROOF_PREFIXES, BuildError, discover_chapters

INDEX_PAGE = BOOK_DIR / "thesis_index.md"

# The thesis's numbered items in its order: 43 statements, 2 algorithms, 4 figures. Its table of contents,
# not the book's content: the homes, titles and everything else come from the chapters and the library.
THESIS_ITEMS: tuple[str, ...] = (
    # Section 1.1
    "Definition 1.1.1", "Example 1.1.2", "Definition 1.1.3", "Definition 1.1.4", "Definition 1.1.5",
    "Figure 1.1",
    # Section 1.2
    "Definition 1.2.1", "Example 1.2.2", "Definition 1.2.3", "Definition 1.2.4", "Theorem 1.2.5",
    "Lemma 1.2.6", "Corollary 1.2.7", "Theorem 1.2.8", "Algorithm 1",
    # Section 1.3
    "Definition 1.3.1", "Remark 1.3.2", "Definition 1.3.3", "Definition 1.3.4", "Definition 1.3.5",
    "Lemma 1.3.6", "Lemma 1.3.7", "Definition 1.3.8", "Corollary 1.3.9", "Proposition 1.3.10",
    "Proposition 1.3.11", "Proposition 1.3.12", "Proposition 1.3.13",
    # Section 2.1
    "Definition 2.1.1", "Figure 2.1", "Figure 2.2", "Definition 2.1.2", "Figure 2.3", "Lemma 2.1.3",
    "Theorem 2.1.4", "Definition 2.1.5", "Remark 2.1.6",
    # Section 2.2
    "Definition 2.2.1", "Example 2.2.2", "Remark 2.2.3",
    # Section 2.3
    "Definition 2.3.1", "Definition 2.3.2", "Definition 2.3.3", "Proposition 2.3.4", "Algorithm 2",
    # Section 3.1
    "Definition 3.1.1", "Definition 3.1.2", "Definition 3.1.3", "Remark 3.1.4",
)

KINDS = ("definition", "lemma", "proposition", "theorem", "corollary", "example", "remark", "algorithm", "figure")
PLURALS = {"definition": "definitions", "lemma": "lemmas", "proposition": "propositions", "theorem": "theorems",
           "corollary": "corollaries", "example": "examples", "remark": "remarks", "algorithm": "algorithms",
           "figure": "figures"}
_KIND_WORD = {**{k: k for k in KINDS}, **{v: k for k, v in PLURALS.items()}, "lemmata": "lemma"}
_PREFIX_KIND = {prefix: kind for kind, prefix in PROOF_PREFIXES.items()}

_NUM = r"\d+(?:\.\d+)*"
_MENTION = re.compile(
    r"\b(?P<kind>" + "|".join(sorted(_KIND_WORD, key=len, reverse=True)) + r")\s+"
    rf"(?P<numbers>{_NUM}(?:\s*(?:,\s*(?:and\s+)?|and\s+|to\s+|[-–]\s*){_NUM})*)",
    re.IGNORECASE)
_LABEL_MENTION = re.compile(r"\b(?P<prefix>" + "|".join(_PREFIX_KIND) + r")-(?P<number>\d+(?:-\d+)*)\b")
_FIGURE_NAME = re.compile(
    r"""\bch\.figure\(.*?["'](?P<name>ch\d+_figures?_(?P<numbers>\d+_\d+(?:_and_\d+_\d+)*))["']""")
_FIGURE_TITLE = re.compile(r"""["']Figure (?P<number>\d+\.\d+): (?P<title>[^"'\\]+)["']""")
_ERRATUM_TARGET = re.compile(r"^\((?P<label>errata-e(?P<n>\d+))\)=\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")


class ThesisIndexError(BuildError):
    """The chapters and the thesis's numbering disagree (an item without a home, an unknown item, ...)."""


Item = tuple[str, str]  # (kind, number): ("definition", "1.1.4"), ("figure", "1.1"), ("algorithm", "1")


def item_name(item: Item) -> str:
    """``("definition", "1.1.4")`` -> ``"Definition 1.1.4"``."""
    return f"{item[0].capitalize()} {item[1]}"


def parse_item(name: str) -> Item:
    """``"Definition 1.1.4"`` -> ``("definition", "1.1.4")``."""
    kind, _, number = name.partition(" ")
    kind = kind.lower()
    if kind not in KINDS or not re.fullmatch(_NUM, number):
        raise ValueError(f"not a thesis item: {name!r}")
    return kind, number


def thesis_items() -> list[Item]:
    """:data:`THESIS_ITEMS` as (kind, number) pairs, in the thesis's order."""
    return [parse_item(name) for name in THESIS_ITEMS]


def _expand(numbers: str) -> list[str]:
    """``"2.3.1-2.3.3"`` -> 2.3.1, 2.3.2, 2.3.3; ``"1.3.12 and 1.3.13"`` -> both. A number of another depth
    than the first ends the list (``Algorithm 2, 10.000 epochs`` names Algorithm 2 only)."""
    tokens = re.findall(rf"{_NUM}|[-–]|\bto\b", numbers)
    found: list[str] = []
    depth = tokens[0].count(".")
    in_range = False
    for token in tokens:
        if token in ("-", "–", "to"):
            in_range = True
            continue
        if token.count(".") != depth:
            break
        if in_range and found:
            head, _, first = found[-1].rpartition(".")
            this_head, _, last = token.rpartition(".")
            if head == this_head and int(first) < int(last):
                found += [f"{head}.{k}" if head else str(k) for k in range(int(first) + 1, int(last) + 1)]
            else:
                found.append(token)
        else:
            found.append(token)
        in_range = False
    return found


def _strip_asides(text: str) -> str:
    """Remove every parenthesised aside, nested ones included."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\([^()]*\)", " ", text)
    return text


def mentioned_items(text: str) -> list[Item]:
    """The thesis items that ``text`` names, in order, each once: ``Definition 1.1.4``, ``Definitions 2.3.1-2.3.3``,
    ``Propositions 1.3.12 and 1.3.13``, or a label such as ``def-1-1-4``."""
    found: list[tuple[int, Item]] = []
    for match in _MENTION.finditer(text):
        kind = _KIND_WORD[match["kind"].lower()]
        found += [(match.start(), (kind, number)) for number in _expand(match["numbers"])]
    for match in _LABEL_MENTION.finditer(text):
        found.append((match.start(), (_PREFIX_KIND[match["prefix"]], match["number"].replace("-", "."))))
    return list(dict.fromkeys(item for _, item in sorted(found, key=lambda pair: pair[0])))


# --- the library ---------------------------------------------------------------------------------------


def thesis_tag(docstring: str | None) -> str | None:
    """The paragraph of ``docstring`` that starts with ``Thesis:`` (joined into one line), or None."""
    if not docstring:
        return None
    lines = docstring.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Thesis:"):
            paragraph = [line.strip()]
            for following in lines[i + 1:]:
                if not following.strip():
                    break
                paragraph.append(following.strip())
            return " ".join(paragraph)
    return None


def library_tags(lib_dir: Path = LIB_DIR, package: str = "thesis_lib") -> dict[str, list[Item]]:
    """Map ``thesis_lib.module[.Class][.function]`` to the items its docstring's ``Thesis:`` paragraph names
    (asides in parentheses left out), for every module, class and function (methods and nested ones too)."""
    tags: dict[str, list[Item]] = {}

    def visit(node: Any, qualname: str) -> None:
        tag = thesis_tag(ast.get_docstring(node, clean=True))
        if tag is not None:
            items = mentioned_items(_strip_asides(tag))
            if items:
                tags[qualname] = items
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{qualname}.{child.name}")

    for path in sorted(Path(lib_dir).rglob("*.py")):
        parts = path.relative_to(lib_dir).with_suffix("").parts
        module = ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))
        visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), module)
    return tags


# --- the chapters ---------------------------------------------------------------------------------------


@dataclass
class Home:
    """Where a chapter states (or draws) a thesis item."""

    item: Item
    chapter: str  # the source's stem, "01_neural_networks"
    line: int  # 1-based line of the block or the figure cell
    title: str
    label: str | None = None  # the proof block's label; None for a figure
    section: str = ""  # the heading the item stands under
    anchor: str = ""  # that heading's HTML id (used to link a figure)
    checks: int = 0  # check cells (cells with an assert) in the item's section after it


@dataclass
class _Cell:
    line: int
    tags: list[str]
    asserts: int
    source: str


@dataclass
class _Chapter:
    headings: list[tuple[int, int, str]] = field(default_factory=list)  # (line, level, text)
    blocks: list[tuple[int, str, str, str]] = field(default_factory=list)  # (line, kind, title, label)
    cells: list[_Cell] = field(default_factory=list)


def _markdown() -> Any:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.colon_fence import colon_fence_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    return MarkdownIt("commonmark").use(front_matter_plugin).use(colon_fence_plugin)


def _split_options(content: str) -> tuple[dict[str, str], str]:
    """A directive's leading ``:name: value`` lines (or a ``---`` YAML block) and the body after them."""
    import yaml

    lines = content.splitlines()
    options: dict[str, str] = {}
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
            return {str(k): v for k, v in loaded.items()}, "\n".join(lines[end + 1:])
    i = 0
    while i < len(lines):
        match = re.match(r"^:(?P<name>[A-Za-z_-]+):[ \t]*(?P<value>.*)$", lines[i].strip())
        if not match:
            break
        options[match["name"]] = match["value"].strip()
        i += 1
    return options, "\n".join(lines[i:])


def count_asserts(code: str) -> int:
    """The ``assert`` statements of a code cell (IPython's ``%`` and ``!`` lines are ignored)."""
    python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return len(re.findall(r"^\s*assert\b", python, re.MULTILINE))
    return sum(isinstance(node, ast.Assert) for node in ast.walk(tree))


def _parse_chapter(text: str) -> _Chapter:
    import yaml

    chapter = _Chapter()
    tokens = _markdown().parse(text)
    for k, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[k + 1]
            chapter.headings.append((token.map[0] + 1, int(token.tag[1]), inline.content.strip()))
        elif token.type in ("fence", "colon_fence"):
            info = token.info.strip()
            match = re.match(r"^\{(?P<directive>[a-z:-]+)\}[ \t]*(?P<argument>.*)$", info)
            if not match:
                continue
            options, body = _split_options(token.content)
            if match["directive"] == "code-cell":
                tags = options.get("tags", [])
                if isinstance(tags, str):
                    tags = yaml.safe_load(tags) or []
                chapter.cells.append(_Cell(token.map[0] + 1, list(tags), count_asserts(body), body))
            elif match["directive"].startswith("prf:"):
                kind = match["directive"][4:]
                chapter.blocks.append((token.map[0] + 1, kind, match["argument"].strip(),
                                       str(options.get("label", ""))))
    return chapter


def heading_anchor(heading: str) -> str:
    """The HTML id docutils gives a section with this Markdown heading (``Figure 1.1, redrawn`` ->
    ``figure-1-1-redrawn``)."""
    from docutils import nodes

    text = re.sub(r"\$([^$]*)\$|`([^`]*)`", lambda m: m[1] if m[1] is not None else m[2], heading)
    text = re.sub(r"[*_]{1,3}([^*_]+)[*_]{1,3}", r"\1", text)
    return nodes.make_id(nodes.fully_normalize_name(text))


def _section_of(chapter: _Chapter, line: int, home_lines: set[int]) -> tuple[str, int]:
    """The heading text the line stands under, and the line where the item's part of that section ends: the
    next heading of the same or a higher level, or the next subsection that is home to another item."""
    above = [(ln, level, text) for ln, level, text in chapter.headings if ln < line]
    title, level = (above[-1][2], above[-1][1]) if above else ("", 0)
    below = [(ln, lv) for ln, lv, _ in chapter.headings if ln > line] + [(sys.maxsize, 0)]
    for (ln, lv), (next_ln, _) in zip(below, below[1:]):
        if lv <= level or any(ln < home < next_ln for home in home_lines):
            return title, ln
    return title, sys.maxsize


def _plot_title_to_myst(title: str) -> str:
    """A plot's plain-text title as MyST: ``R^5 -> R^2`` becomes ``$\\mathbb{R}^{5}$ → $\\mathbb{R}^{2}$``."""
    title = re.sub(r"\bR\^(\d+)\b", r"$\\mathbb{R}^{\1}$", title.strip())
    return title.replace(" -> ", " → ")


def chapter_homes(stem: str, text: str) -> list[Home]:
    """The thesis items a chapter's source states (numbered proof blocks) or draws (``ch.figure`` cells)."""
    chapter = _parse_chapter(text)
    homes: list[Home] = []
    for line, kind, title, label in chapter.blocks:
        if kind not in PROOF_PREFIXES:
            continue
        numbered = re.fullmatch(rf"{PROOF_PREFIXES[kind]}-(\d+(?:-\d+)*)", label)
        if not numbered:
            continue  # the book's own statement (a word label) or a malformed one (sources.lint_proof_blocks)
        number = numbered[1].replace("-", ".")
        name = re.match(rf"{re.escape(number)}\s*(?:\((?P<name>.*)\))?\s*$", title)
        homes.append(Home((kind, number), stem, line, (name["name"] or "") if name else title, label=label))
    for cell in chapter.cells:
        for match in _FIGURE_NAME.finditer(cell.source):
            titles = {m["number"]: _plot_title_to_myst(m["title"]) for m in _FIGURE_TITLE.finditer(cell.source)}
            for number in match["numbers"].split("_and_"):
                number = number.replace("_", ".")
                homes.append(Home(("figure", number), stem, cell.line, titles.get(number, "")))
    home_lines = {home.line for home in homes}
    for home in homes:
        section, end = _section_of(chapter, home.line, home_lines)
        home.section = section
        home.anchor = heading_anchor(section) if section else ""
        home.checks = sum(1 for cell in chapter.cells if home.line < cell.line < end and cell.asserts)
    return homes


# --- the errata -----------------------------------------------------------------------------------------


def errata_entries(text: str) -> list[tuple[str, str, list[Item]]]:
    """The errata chapter's entries: (``"E23"``, label ``"errata-e23"``, the items their heading names)."""
    lines = text.splitlines()
    entries: list[tuple[str, str, list[Item]]] = []
    for i, line in enumerate(lines):
        target = _ERRATUM_TARGET.match(line.strip())
        if not target:
            continue
        following = next((ln for ln in lines[i + 1:] if ln.strip()), "")
        heading = _HEADING.match(following.strip())
        if not heading:
            raise ThesisIndexError(f"errata: the target ({target['label']})= is not followed by a heading")
        entries.append((f"E{target['n']}", target["label"], mentioned_items(heading["text"])))
    return entries


# --- the index ------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One row of the index."""

    item: Item
    home: Home
    library: list[str]
    errata: list[tuple[str, str]]  # ("E4", "errata-e4")

    @property
    def name(self) -> str:
        return item_name(self.item)


def build_index(notebooks_dir: Path = NOTEBOOKS_DIR, lib_dir: Path = LIB_DIR) -> list[Entry]:
    """Every item of :data:`THESIS_ITEMS`, in order, with its home, library code and errata.

    Raises :class:`ThesisIndexError` naming the items when one has no home, when one is stated twice, when a
    chapter numbers a block the thesis does not have, or when a ``Thesis:`` tag or an erratum names an item
    the thesis does not have.
    """
    expected = thesis_items()
    known = set(expected)
    chapters = discover_chapters(Path(notebooks_dir))
    errata_sources = [path for path in chapters.values() if path.stem.endswith("_errata")]
    homes: dict[Item, list[Home]] = {}
    for path in chapters.values():
        if path in errata_sources:
            continue
        for home in chapter_homes(path.stem, path.read_text(encoding="utf-8")):
            homes.setdefault(home.item, []).append(home)

    problems: list[str] = []
    missing = [item for item in expected if item not in homes]
    if missing:
        problems.append("no home in the chapters (no proof block with its label, no figure cell) for "
                        + ", ".join(item_name(item) for item in missing))
    unknown = sorted(set(homes) - known)
    for item in unknown:
        where = ", ".join(f"{h.chapter}.md:{h.line}" for h in homes[item])
        problems.append(f"{item_name(item)} ({where}) is not an item of the thesis (see THESIS_ITEMS)")
    for item in expected:
        stated = [h for h in homes.get(item, []) if h.item[0] != "figure"]
        if len(stated) > 1:
            problems.append(f"{item_name(item)} is stated twice: "
                            + ", ".join(f"{h.chapter}.md:{h.line}" for h in stated))

    tags = library_tags(lib_dir)
    for qualname, items in tags.items():
        for item in items:
            if item not in known:
                problems.append(f"{qualname}: its Thesis: tag names {item_name(item)}, not an item of the thesis")
    errata: dict[Item, list[tuple[str, str]]] = {}
    for path in errata_sources:
        for number, label, items in errata_entries(path.read_text(encoding="utf-8")):
            for item in items:
                if item not in known:
                    problems.append(f"{path.name}: erratum {number} names {item_name(item)}, "
                                    "not an item of the thesis")
                errata.setdefault(item, []).append((number, label))
    if problems:
        raise ThesisIndexError("the index of the thesis (book/thesis_index.py):\n  " + "\n  ".join(problems))

    return [Entry(item, homes[item][0], [q for q, items in tags.items() if item in items], errata.get(item, []))
            for item in expected]


def _cell(text: str) -> str:
    return text.replace("|", r"\|").strip() or "—"


def item_link(entry: Entry) -> str:
    """The item's name, linked to its home: a ``{prf:ref}`` for a block, the section's anchor for a figure."""
    home = entry.home
    if home.label:
        return f"{{prf:ref}}`{entry.name} <{home.label}>`"
    if home.anchor:
        return f'<a class="reference internal" href="chapters/{home.chapter}.html#{home.anchor}">{entry.name}</a>'
    return f"{{doc}}`{entry.name} <chapters/{home.chapter}>`"


def render_page(entries: Sequence[Entry], errata_chapter: str = "06_errata") -> str:
    """The MyST page ``book/thesis_index.md`` for ``entries``; ``errata_chapter`` is the errata's source stem."""
    counts = {kind: sum(1 for e in entries if e.item[0] == kind) for kind in KINDS}
    statements = sum(n for kind, n in counts.items() if kind not in ("algorithm", "figure"))
    kinds = ", ".join(f"{n} {PLURALS[kind] if n != 1 else kind}" for kind, n in counts.items() if n)
    checked = sum(1 for e in entries if e.home.checks)
    with_errata = sum(1 for e in entries if e.errata)
    unchecked = [e for e in entries if not e.home.checks]
    lines = [
        "<!-- Generated by book/thesis_index.py from notebooks/*.md and thesis_lib/**/*.py: do not edit by hand. -->",
        "",
        "# Index of the thesis",
        "",
        f"The thesis numbers {len(entries)} items: {statements} statements, "
        f"{counts['algorithm']} algorithms and {counts['figure']} figures ({kinds}). The table lists them in "
        "the thesis's order, each with the place where this book states it and runs it, the code of `thesis_lib` "
        "that implements it, and whether a check or an erratum stands there. The page is generated from the "
        "chapters' sources and the library's docstrings each time the book is built "
        "(`book/thesis_index.py`), and the build stops if an item of the thesis has no home in a chapter. "
        "What the book adds of its own, such as the variational autoencoder of the chapter the thesis left "
        "unfinished, has no number in the thesis and is not listed.",
        "",
        "- **Item** links to the block that states the item in its chapter; for a figure, to the section that "
        "redraws it. **Title** is the name the book gives the item (the thesis names few of them). **Ch.** is the "
        "chapter of this book.",
        "- **Library**: the modules, classes and functions whose docstring names the item on its `Thesis:` line "
        "(asides in parentheses do not count).",
        "- **Check**: the number of code cells with an `assert` statement that follow the item in its section: "
        "after the item, up to the next heading of the same or a higher level or to the next subsection that "
        "states another item. They run whenever the chapter is executed, and a failed assertion stops the "
        "build. Items stated one after the other in a section share its checks.",
        f"- **Erratum**: the entries of {{doc}}`chapters/{errata_chapter}` whose heading names the item. "
        "The typographical notes at the end of that page are not counted.",
        "",
        (f"All {len(entries)} items have a check" if not unchecked else
         f"{checked} of the {len(entries)} items have a check; these have none: "
         + ", ".join(item_link(e) for e in unchecked))
        + f". {with_errata} items are named by an erratum.",
        "",
        "| Item | Title | Ch. | Library | Check | Erratum |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        library = ", ".join(f"`{name}`" for name in e.library)
        errata = ", ".join(f"{{ref}}`{number} <{label}>`" for number, label in e.errata)
        check = f"✓ {e.home.checks}" if e.home.checks else ""
        title = e.home.title
        chapter = f"{{doc}}`{int(e.home.chapter[:2])} <chapters/{e.home.chapter}>`"
        lines.append(f"| {item_link(e)} | {_cell(title)} | {chapter} | {_cell(library)} | {_cell(check)} "
                     f"| {_cell(errata)} |")
    return "\n".join(lines) + "\n"


def generate(notebooks_dir: Path = NOTEBOOKS_DIR, lib_dir: Path = LIB_DIR) -> str:
    """The text of ``book/thesis_index.md`` that the sources give."""
    errata = [p.stem for p in discover_chapters(Path(notebooks_dir)).values() if p.stem.endswith("_errata")]
    return render_page(build_index(notebooks_dir, lib_dir), *errata[:1])


def write_index(path: Path = INDEX_PAGE, notebooks_dir: Path = NOTEBOOKS_DIR, lib_dir: Path = LIB_DIR) -> bool:
    """Write the index to ``path`` atomically (a temporary file moved into place), only if it changed.

    Returns whether the file was written. Raises :class:`ThesisIndexError` as :func:`build_index`.
    """
    text = generate(notebooks_dir, lib_dir)
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="book/thesis_index.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not what the sources give")
    parser.add_argument("--output", type=Path, default=INDEX_PAGE, help="default: book/thesis_index.md")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR, help="default: notebooks")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        if args.check:
            current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
            if current != generate(args.notebooks_dir):
                print(f"{args.output} is out of date: run python book/thesis_index.py", file=sys.stderr)
                return 1
            print(f"{args.output} is up to date")
            return 0
        written = write_index(args.output, args.notebooks_dir)
    except ThesisIndexError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output}: {'written' if written else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
