r"""Chapters and their sources: where they are, the rules they follow, how an executed notebook is
compared with its source. Used by ``book/build.py``.

Conventions for chapter authors
-------------------------------
*Source.* One chapter = one Jupytext MyST Markdown file ``notebooks/NN_slug.md`` (``NN`` two digits,
``slug`` lower-case ``[a-z0-9_]``), listed as ``chapters/NN_slug`` in the toctree of ``book/intro.md``. Header::

    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---

Code cells are ```` ```{code-cell} ipython3 ````. Cell options go on ``:tags: [...]`` lines.

*First code cell*, tagged ``[parameters, remove-cell]``, constants only (papermill overrides them)::

    profile = "full"
    seed = 0
    device = "auto"
    data_dir = None
    retrain = False
    figures_dir = None

*Next cell*, tagged ``remove-input`` (or ``remove-cell``); ``%matplotlib inline`` registers the PNG
formatter for every :class:`matplotlib.figure.Figure`, without it a returned Figure (thesis_lib.publishing.plotting
builds Figures without pyplot) shows only as ``<Figure size ...>`` text::

    %matplotlib inline
    from thesis_lib.publishing.chapter import start_chapter
    ch = start_chapter("01", profile=profile, seed=seed, device=device, data_dir=data_dir,
                       retrain=retrain, figures_dir=figures_dir)
    cfg, dev = ch.cfg, ch.device

``start_chapter`` also sets up the kernel's process for training (``thesis_lib.runtime.process``), before torch
computes anything; the build starts each kernel with glibc's allocator settings of training
(``thesis_lib.ground.config.MALLOC_ENV``) in its environment.

*Figures* are saved under stable names and displayed by returning them: ``ch.figure(fig, "ch1_name")``
as the last line of a cell.

*Last cell*, tagged ``[remove-input, nbval-ignore-output]`` (its values differ between machines)::

    from thesis_lib.publishing.chapter import environment_table
    environment_table(cfg)

*Numbers that nbval compares* (cells tagged ``nbval-check-output``) must print the same on every CPU:
the committed outputs were made on one machine, and a reader's CPU may run other kernels (another vendor,
another vector width, another BLAS path). ``make test`` re-runs nbval under a second set of kernels
(``make nbval-kernels``) to find a cell that breaks this rule. So:

- a number at rounding level (an error, a residual, a difference from an oracle or a closed form) prints
  as the bound it keeps, ``thesis_lib.publishing.chapter.format_error(err)`` (``< 1e-12``), or not at all: the
  cell's ``assert`` holds it;
- every other number prints with no more digits than the tolerance the chapter states or asserts for it
  (a loss asserted to 1e-3 prints with three decimals, not six);
- where the value itself is the subject (a float32 error that IEEE arithmetic fixes), print what the
  text claims of it (``within 2^-24``), not its last digits.

*Thesis items.* Numbered items of the thesis are sphinx-proof blocks that keep the thesis's own
number: always ``:nonumber:``, the number first in the title, then the name in parentheses::

    ```{prf:definition} 1.1.4 (φ-layer)
    :label: def-1-1-4
    :nonumber:

    Let $\varphi$ be an activation function ...
    ```

renders as "Definition 1.1.4 (φ-layer)" (``proof_title_format = " %t"`` in ``conf.py``). Labels are
``<prefix>-<number with dashes>``: ``def-1-1-4``, ``thm-1-2-5``, ``lem-2-1-3``, ``prop-1-3-10``,
``alg-1``, ``cor-1-2-7``, ``rem-3-1-4``, ``ex-1-1-2``. Cite them with explicit text, since a bare
reference to a ``:nonumber:`` block reads only "Definition"::

    {prf:ref}`Definition 1.1.4 <def-1-1-4>`

A block for something the thesis does not number (e.g. the ELBO of the unfinished chapter 3) is
``:nonumber:`` too, with a word label (``def-elbo``) and a title without a number:
```` ```{prf:definition} (evidence lower bound) ````. The build checks these rules before it runs
anything (:func:`lint_proof_blocks`).

*Equations* keep the thesis's numbers through MathJax's ``\tag`` (not MyST's ``$$ ... $$ (label)``,
which would number them 1, 2, ... itself); a target ``(eq-1-7)=`` on the line before makes them citable
with explicit text::

    (eq-1-7)=
    $$
    (\psi_1)_{ij} = \sum_{m,n=1}^{s} (\psi_0)_{m+i,n+j} k_{mn} \tag{1.7}
    $$

    ... by {ref}`Eq. (1.7) <eq-1-7>` ...
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = REPO_ROOT / "book"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
LIB_DIR = REPO_ROOT / "thesis_lib"
DEFAULT_OUTPUT_DIR = BOOK_DIR / "chapters"
SITE_DIR = BOOK_DIR / "_build" / "html"
FAILED_DIR = BOOK_DIR / "_build" / "failed"
CHAPTER_FILE = re.compile(r"^(?P<number>\d\d)_(?P<slug>[a-z0-9_]+)\.md$")

PROOF_PREFIXES = {"definition": "def", "theorem": "thm", "lemma": "lem", "proposition": "prop",
                  "algorithm": "alg", "corollary": "cor", "remark": "rem", "example": "ex"}


class UsageError(Exception):
    """A bad command line: exit status 2."""


class BuildError(Exception):
    """The build cannot go on (a chapter failed, a source is malformed, ...): exit status 1."""


def discover_chapters(notebooks_dir: Path) -> dict[str, Path]:
    """Map chapter number ("01") to its source ``NN_slug.md`` in ``notebooks_dir``, in order."""
    chapters: dict[str, Path] = {}
    for path in sorted(Path(notebooks_dir).glob("*.md")):
        match = CHAPTER_FILE.match(path.name)
        if not match:
            continue
        number = match["number"]
        if number in chapters:
            raise BuildError(f"two sources for chapter {number}: {chapters[number].name} and {path.name}")
        chapters[number] = path
    return chapters


def select_chapters(chapters: Mapping[str, Path], requested: Sequence[str] | None) -> dict[str, Path]:
    """The chapters ``--chapter`` asks for (all when none); "3" means "03"."""
    if not requested:
        return dict(chapters)
    selected: dict[str, Path] = {}
    for item in requested:
        number = item.zfill(2) if item.isdigit() else item
        if number not in chapters:
            raise UsageError(f"--chapter {item!r}: no such chapter; known are {', '.join(chapters) or 'none'}")
        selected[number] = chapters[number]
    return selected


def _cell_id(cell_type: str, source: str, seen: dict[str, int]) -> str:
    """A cell id derived from the cell's content (not random), unique within the notebook."""
    base = hashlib.sha256(f"{cell_type}\0{source}".encode()).hexdigest()[:12]
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def set_cell_ids(nb: Any) -> Any:
    """Give every cell a content-derived id, so re-converting a source does not change them."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        else:
            source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
            cell["id"] = _cell_id(cell.cell_type, source, seen)
    return nb


def read_source(path: Path) -> Any:
    """Read a chapter's MyST Markdown with jupytext; return the notebook (content-derived cell ids)."""
    import jupytext

    return set_cell_ids(jupytext.reads(Path(path).read_text(encoding="utf-8"), fmt="md:myst"))


_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{prf:(?P<kind>[a-z]+)\}[ \t]*(?P<title>.*)$")
_OPTION = re.compile(r"^:(?P<name>[a-z_-]+):[ \t]*(?P<value>.*)$")


def lint_proof_blocks(text: str, where: str = "source") -> list[str]:
    """Check the sphinx-proof blocks of a chapter against the convention of this module's docstring.

    Returns one message per problem (empty when all is well): every block of a kind in
    ``PROOF_PREFIXES`` has ``:nonumber:`` and a ``:label:`` with that kind's prefix; a numbered label
    (``def-1-1-4``) goes with a title that starts with the same number (``1.1.4``); a word label
    (``def-elbo``) with a title that starts with no number.
    """
    problems: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _FENCE.match(line)
        if not match or match["kind"] not in PROOF_PREFIXES:
            continue
        kind, title = match["kind"], match["title"].strip()
        options: dict[str, str] = {}
        for following in lines[i + 1:]:
            opt = _OPTION.match(following.strip())
            if not opt:
                break
            options[opt["name"]] = opt["value"].strip()
        at = f"{where}:{i + 1}: {{prf:{kind}}} {title!r}"
        prefix = PROOF_PREFIXES[kind]
        label = options.get("label", "")
        if "nonumber" not in options:
            problems.append(f"{at}: needs :nonumber: (the thesis's number goes in the title)")
        if not label:
            problems.append(f"{at}: needs a :label: such as {prefix}-1-1-4")
            continue
        numbered = re.fullmatch(rf"{prefix}-(\d+(?:-\d+)*)", label)
        if numbered:
            number = numbered[1].replace("-", ".")
            if not re.match(rf"{re.escape(number)}(?![.\d])", title):
                problems.append(f"{at}: label {label!r} says item {number}, the title must start with {number}")
        elif re.fullmatch(rf"{prefix}-[a-z][a-z0-9-]*", label):
            if re.match(r"\d", title):
                problems.append(f"{at}: label {label!r} has no number but the title starts with one")
        else:
            problems.append(f"{at}: label {label!r} must be {prefix}-<number with dashes> "
                            f"(e.g. {prefix}-1-1-4) or {prefix}-<word>")
    return problems


def _cell_key(cell: Any) -> tuple[str, str, tuple[str, ...]]:
    source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
    return cell.cell_type, source.replace("\r\n", "\n").rstrip(), tuple(cell.metadata.get("tags", []))


def compare_cells(source_nb: Any, executed_nb: Any) -> str | None:
    """Describe the first difference between a source and its executed notebook, or ``None``.

    papermill's injected-parameters cell is dropped; cell types, sources (trailing white space
    aside) and tags must then agree one to one.
    """
    executed = [c for c in executed_nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for k, (a, b) in enumerate(zip(source_nb.cells, executed)):
        if _cell_key(a) != _cell_key(b):
            what = ("cell type" if a.cell_type != b.cell_type else
                    "source" if _cell_key(a)[1] != _cell_key(b)[1] else "tags")
            first = _cell_key(a)[1].splitlines()[:1] or [""]
            return f"cell {k + 1} ({a.cell_type}, starting {first[0][:60]!r}) differs in its {what}"
    if len(source_nb.cells) != len(executed):
        return f"the source has {len(source_nb.cells)} cells, the executed notebook {len(executed)}"
    return None


def check_sources(chapters: Mapping[str, Path], output_dir: Path, *, all_chapters: bool = True) -> list[str]:
    """Compare every executed notebook in ``output_dir`` with its Markdown source.

    Returns one message per mismatch, naming the chapter: a missing executed notebook, a cell that
    differs (see :func:`compare_cells`), a malformed thesis block and, when ``all_chapters``, an
    executed notebook whose source is gone.
    """
    import nbformat

    problems: list[str] = []
    for number, source in chapters.items():
        text = source.read_text(encoding="utf-8")
        problems += [f"chapter {number}: {p}" for p in lint_proof_blocks(text, source.name)]
        executed = Path(output_dir) / f"{source.stem}.ipynb"
        if not executed.exists():
            problems.append(f"chapter {number} ({source.name}): no executed notebook {executed}")
            continue
        difference = compare_cells(read_source(source), nbformat.read(executed, as_version=4))
        if difference:
            problems.append(f"chapter {number} ({source.name}): {executed.name} does not match its source: "
                            f"{difference}; execute it again (python book/build.py --chapter {number})")
    if all_chapters:
        stems = {p.stem for p in chapters.values()}
        for orphan in sorted(Path(output_dir).glob("*.ipynb")):
            if orphan.stem not in stems:
                problems.append(f"chapter {orphan.stem[:2]}: {orphan} has no source in notebooks/")
    return problems
