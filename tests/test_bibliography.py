"""The book's bibliography: one BibTeX file, cited with roles, and no citation typed by hand.

Every work the book cites is one entry of ``book/references.bib``, cited in the text with
sphinxcontrib-bibtex's roles (``{cite:t}`key``` for "Kingma and Welling [2014] showed",
``{cite:p}`key``` for a parenthetical citation, a location in braces after the key:
``{cite:p}`burda2016importance{Theorem 1}```) and listed on the References page
(``book/references.md``). The tests check that

* references.bib parses, has no duplicate key, and each entry has the fields of its type;
* every key cited anywhere in the book's sources exists in references.bib, and every entry is cited;
* no citation is typed by hand: the Markdown prose of the sources (outside ``{cite}`` roles, inline
  code and code cells) has no "Name et al. (2016", "Name and Name (1989", "Name et al. 2016",
  "(Name, 2014)", no "et al." at all, no first author of an entry by name, and no author of an entry
  followed by a year; the code cells (whose printed output cannot carry a role) name no first author
  and say no "et al.";
* the scan works: a hand-typed citation planted in a temporary copy of a chapter is found.

The book's sources are the chapters' Jupytext sources ``notebooks/NN_slug.md`` and every other page
that the toctrees of ``book/intro.md`` list (``book/<file>.md``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import runpy
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
BIB = BOOK / "references.bib"
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(BOOK))  # book/'s modules: website reads the table of contents
import website  # noqa: E402
from status import GENERATED  # noqa: E402

# A citation role: {cite}, {cite:t}, {cite:p}, {cite:ts}, {cite:author}, ..., and footnote citations.
ROLE = re.compile(r"\{(?:cite|footcite)(?::[a-z]+)?\}`([^`]*)`")
CODE_CELL = re.compile(r"^```\{code-cell\}")
INLINE_CODE = re.compile(r"`[^`\n]*`")
URL = re.compile(r"https?://\S+")

NAME = r"[A-Z][A-Za-zÀ-ÿ'’-]+"  # a capitalised word
YEAR = r"(?:1[89]|20)\d\d[a-z]?\b"
HAND_TYPED = {
    "Name et al. (2016": re.compile(rf"\b{NAME}\s+et\s+al\.?,?\s*\(?\s*{YEAR}"),
    "Name and Name (1989": re.compile(rf"\b{NAME},?\s+(?:and|&)\s+{NAME},?\s*\(?\s*{YEAR}"),
    "(Name, 2014)": re.compile(rf"\(\s*(?:[A-Z]\.\s*)*{NAME}(?:\s+et\s+al\.)?,?\s+{YEAR}\s*[,;)]"),
    "et al.": re.compile(r"\bet\s+al\b\.?"),
}

REQUIRED_FIELDS = {
    "article": ("title", "journal", "year"),
    "book": ("title", "publisher", "year"),
    "inproceedings": ("title", "booktitle", "year"),
    "mastersthesis": ("title", "school", "year"),
    "phdthesis": ("title", "school", "year"),
    "misc": ("title",),
}


# ---------------------------------------------------------------------------------------------------
# Reading the sources


def book_sources() -> list[Path]:
    """The chapters' sources and every other page listed in the toctrees of book/intro.md, in the order of the toc;
    not the pages that the build writes from records (status.GENERATED: they cite nothing)."""
    files = website.toc_files(BOOK)
    paths = []
    for name in files:
        if name in GENERATED:
            continue
        if name.startswith("chapters/"):
            paths.append(NOTEBOOKS / f"{name.removeprefix('chapters/')}.md")
        else:
            paths.append(BOOK / f"{name}.md")
    return paths


def split_cells(text: str) -> tuple[str, str]:
    """(prose, code): the text twice, once with the code cells' lines blanked and once with everything
    else blanked, so that line numbers stay those of the file."""
    prose, code = [], []
    in_code = False
    for line in text.split("\n"):
        if not in_code and CODE_CELL.match(line):
            in_code = True
            prose.append("")
            code.append("")
        elif in_code and line.strip() == "```":
            in_code = False
            prose.append("")
            code.append("")
        elif in_code:
            prose.append("")
            code.append(line)
        else:
            prose.append(line)
            code.append("")
    return "\n".join(prose), "\n".join(code)


def _blank(placeholder: str):
    # keeps the line breaks of what it replaces, so that line numbers stay right
    return lambda m: placeholder + "\n" * m.group(0).count("\n")


def prose_without_citations(text: str) -> str:
    """The Markdown prose of a source with its code cells, {cite} roles, inline code and URLs removed."""
    prose, _ = split_cells(text)
    prose = ROLE.sub(_blank("[cite]"), prose)
    prose = INLINE_CODE.sub(_blank("[code]"), prose)
    return URL.sub(_blank("[url]"), prose)


def cited_keys(text: str) -> list[str]:
    """Every key cited by a role in text (pre- and post-text in braces removed)."""
    keys = []
    for targets in ROLE.findall(text):
        for target in re.sub(r"\{[^{}]*\}", "", targets).split(","):
            if target.strip():
                keys.append(target.strip())
    return keys


# ---------------------------------------------------------------------------------------------------
# The bibliography


def bibliography():
    return parse_file(str(BIB), bib_format="bibtex")


def surnames(entry, first_only: bool) -> list[str]:
    """The last names of an entry's authors (only the first author's with first_only), without
    braces; a corporate author in braces is left out."""
    persons = entry.persons.get("author", [])[:1] if first_only else entry.persons.get("author", [])
    names = []
    for person in persons:
        last = " ".join(person.last_names)
        if last and not last.startswith("{"):
            names.append(last.replace("{", "").replace("}", ""))
    return names


def hand_typed_citations(path: Path, text: str | None = None) -> list[str]:
    """Where the source at path (or text, read from path if None) cites a work by hand: one
    "file:line: kind: match" per finding."""
    text = path.read_text(encoding="utf-8") if text is None else text
    entries = bibliography().entries.values()
    first_authors = sorted({name for e in entries for name in surnames(e, first_only=True)})
    all_authors = sorted({name for e in entries for name in surnames(e, first_only=False)})
    patterns = dict(HAND_TYPED)
    for name in first_authors:
        patterns[f"first author {name}"] = re.compile(rf"\b{re.escape(name)}\b")
    for name in all_authors:
        patterns[f"author {name} and a year"] = re.compile(rf"\b{re.escape(name)}\b.{{0,40}}?\b{YEAR}",
                                                           re.S)
    prose = prose_without_citations(text)
    _, code = split_cells(text)
    code_patterns = {kind: p for kind, p in patterns.items() if kind.startswith("first author")}
    code_patterns["et al."] = HAND_TYPED["et al."]
    found = []
    for where, body, kinds in (("prose", prose, patterns), ("code", code, code_patterns)):
        for kind, pattern in kinds.items():
            for m in pattern.finditer(body):
                line = body.count("\n", 0, m.start()) + 1
                snippet = " ".join(m.group(0).split())
                found.append(f"{path.name}:{line}: {where}: {kind}: {snippet!r}")
    return sorted(set(found))


# ---------------------------------------------------------------------------------------------------
# Tests


def test_the_sources_exist():
    paths = book_sources()
    missing = [str(p) for p in paths if not p.exists()]
    assert not missing, f"pages in the toctrees of book/intro.md without a source: {missing}"
    assert NOTEBOOKS / "05_variational_autoencoders.md" in paths and BOOK / "intro.md" in paths
    assert BOOK / "references.md" in paths, "the References page is not in the toctrees of book/intro.md"


def test_references_bib_parses():
    raw = BIB.read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,\s]+),", raw, re.M)
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"keys defined twice in references.bib: {duplicates}"
    data = bibliography()
    assert sorted(data.entries) == sorted(keys)
    problems = []
    for key, entry in data.entries.items():
        required = REQUIRED_FIELDS.get(entry.type)
        if required is None:
            problems.append(f"{key}: entry type @{entry.type} has no rule in this test")
            continue
        problems += [f"{key}: no {field}" for field in required if field not in entry.fields]
        if entry.type != "misc" and not entry.persons.get("author"):
            problems.append(f"{key}: no author")
        if "year" in entry.fields and not re.fullmatch(r"(1[89]|20)\d\d", entry.fields["year"]):
            problems.append(f"{key}: year {entry.fields['year']!r}")
        if "eprint" in entry.fields and not re.fullmatch(r"\d{4}\.\d{4,5}", entry.fields["eprint"]):
            problems.append(f"{key}: arXiv id {entry.fields['eprint']!r}")
        if entry.type == "misc" and "url" not in entry.fields:
            problems.append(f"{key}: a @misc entry needs its url")
    assert not problems, "\n".join(problems)


def test_the_book_is_configured_for_the_bibliography():
    config = runpy.run_path(str(BOOK / "conf.py"))
    assert "references.bib" in config["bibtex_bibfiles"]
    assert "sphinxcontrib.bibtex" in config["extensions"]
    assert config["bibtex_reference_style"] == "author_year"
    assert re.search(r"^```\{bibliography\}", (BOOK / "references.md").read_text(encoding="utf-8"),
                     re.M)


def test_every_cited_key_exists_and_every_entry_is_cited():
    entries = set(bibliography().entries)
    cited: dict[str, list[str]] = {}
    for path in book_sources():
        for key in cited_keys(path.read_text(encoding="utf-8")):
            cited.setdefault(key, []).append(path.name)
    unknown = {key: sorted(set(where)) for key, where in cited.items() if key not in entries}
    assert not unknown, f"cited but not in references.bib: {unknown}"
    uncited = sorted(entries - set(cited))
    assert not uncited, f"in references.bib but cited nowhere in the book: {uncited}"


def test_no_citation_is_typed_by_hand():
    found = [f for path in book_sources() for f in hand_typed_citations(path)]
    assert not found, ("cite these with {cite:t}`key` or {cite:p}`key` (book/references.bib):\n"
                       + "\n".join(found))


# --- the scan itself --------------------------------------------------------------------------------

CHAPTER = NOTEBOOKS / "05_variational_autoencoders.md"

PLANTED = [
    "As Kingma and Welling (2014) showed, the bound is tight.",
    "the IWAE of Burda et al. (2016, Theorem 1) is tighter",
    "the $\\beta$-VAE (Higgins et al. 2017) weights the divergence",
    "a linear autoencoder is PCA (Baldi & Hornik 1989).",
    "likelihood fails as an anomaly score (Nalisnick, 2019).",
    "The thesis (M. Sevkovych, 2023) stops here.",
    "as Goodfellow, Bengio and Courville,\nchapter 6, put it",
    "Kingma and Ba use $10^{-8}$",
    "a result of Smith et al. on something else",
    "as Rumelhart and Hinton\n(1986) showed",
]


@pytest.mark.parametrize("citation", PLANTED)
def test_a_planted_hand_typed_citation_is_found(tmp_path, citation):
    text = CHAPTER.read_text(encoding="utf-8")
    assert not hand_typed_citations(CHAPTER, text)
    copy = tmp_path / CHAPTER.name
    # planted in the prose after the chapter's first code cell
    at = text.index("\n```\n", text.index("```{code-cell}")) + len("\n```\n")
    planted = text[:at] + "\n" + citation + "\n" + text[at:]
    copy.write_text(planted, encoding="utf-8")
    found = hand_typed_citations(copy)
    assert found, f"not found: {citation!r}"
    line = planted[:at].count("\n") + 2
    assert all(f"{copy.name}:{line}:" in f or f"{copy.name}:{line + 1}:" in f for f in found), found


def test_the_scan_reads_roles_and_code_cells_right(tmp_path):
    prose = ("They follow {cite:t}`kingma2014autoencoding` and {cite:p}`burda2016importance{Theorem 1}`;"
             " `Burda et al. 2016` in inline code is code.\n")
    code_cell = "```{code-cell} ipython3\nx = 1  # Kingma and Welling (2014)\n```\n"
    path = tmp_path / "page.md"
    assert hand_typed_citations(path, prose) == []
    assert cited_keys(prose) == ["kingma2014autoencoding", "burda2016importance"]
    assert cited_keys("{cite:p}`{see}a{p. 3}, b`") == ["a", "b"]
    # a code cell is not prose, but its printed strings cannot carry a role either
    found = hand_typed_citations(path, prose + code_cell)
    assert found == ["page.md:3: code: first author Kingma: 'Kingma'"], found
    unknown = cited_keys("as in {cite:t}`nosuchkey2020`")
    assert unknown == ["nosuchkey2020"] and unknown[0] not in bibliography().entries
