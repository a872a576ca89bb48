#!/usr/bin/env python
r"""Build the companion book: execute the chapters with papermill, then render them with Jupyter Book.

Usage (from the repository root, with the project's virtual environment)::

    python book/build.py --profile quick              # execute what changed, render book/_build/html
    python book/build.py --chapter 03 -p seed 1       # one chapter (repeat --chapter for more)
    python book/build.py --force                      # execute every chapter again, re-render all pages
    python book/build.py --no-render                  # execute only
    python book/build.py --check-sources              # do the executed notebooks match their sources?
    python book/browser_check.py book/_build/html     # then look at the site in headless Chromium

Exit status: 0 success; 1 a chapter failed, a source is malformed, the site needs the network, or
--check-sources found a mismatch; 2 bad command line (unknown parameter, profile not quick/full, ...).

What a build does
-----------------
1. Checks the command line and every chapter's source (see the conventions below) before it runs
   anything.
2. For each chapter ``notebooks/NN_slug.md``: converts it with jupytext, executes it with papermill
   (kernel ``python3`` of this virtual environment, installed with ``ipykernel install --sys-prefix``
   if missing; working directory = repository root) with the parameter ``profile`` (default ``full``)
   and any ``-p NAME VALUE``, and writes
   the executed notebook to ``book/chapters/NN_slug.ipynb`` (or ``--output-dir``). Figures go to
   ``book/_build/figures/`` (``figures_dir`` left at None: ChapterConfig's default; a relative
   ``-p figures_dir DIR`` is relative to the repository root).
   *Cache*: a chapter is skipped when its executed notebook records, under
   ``metadata.companion.input_hash``, the SHA-256 of its source, its parameters and every
   ``thesis_lib/*.py`` (see :func:`input_hash`); ``--force`` executes it anyway.
   *Atomic*: the notebook is written to a temporary file and moved into place, so a failing chapter
   leaves the previous executed notebook as it was; the failed run is kept in ``book/_build/failed/``
   (``OUTPUT_DIR/_failed/`` with ``--output-dir``)
   and the build names the chapter, the cell and the line of the source.
   *Small diffs*: papermill's timestamps and durations, kernel timings and temporary paths are
   stripped and cell ids are derived from the cells' contents; execution counts stay (nbval needs them).
   papermill's injected-parameters cell gets the tag ``remove-cell``.
3. Renders ``jupyter-book build book --builder html -W -n --keep-going`` (notebook execution is off in
   ``_config.yml``: papermill is the only executor), copies MathJax 3 from the installed
   ``django-static-mathjax`` to ``book/_build/html/mathjax/`` (``mathjax_path`` in ``_config.yml``
   points there from every page, also over ``file://``), and fails if any page's ``<script>`` or
   ``<link>`` needs an http(s) URL or points at a file that is not in the site.

Conventions for chapter authors
-------------------------------
*Source.* One chapter = one Jupytext MyST Markdown file ``notebooks/NN_slug.md`` (``NN`` two digits,
``slug`` lower-case ``[a-z0-9_]``), listed as ``chapters/NN_slug`` in ``book/_toc.yml``. Header::

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
formatter for every :class:`matplotlib.figure.Figure`, without it a returned Figure (thesis_lib.plotting
builds Figures without pyplot) shows only as ``<Figure size ...>`` text::

    %matplotlib inline
    from thesis_lib.config import ChapterConfig
    cfg = ChapterConfig.from_parameters(chapter="01", profile=profile, seed=seed, device=device,
                                        data_dir=data_dir, retrain=retrain, figures_dir=figures_dir)

*Figures* are saved under stable names and displayed by returning them: ``cfg.figure(fig, "ch1_name")``
as the last line of a cell.

*Last cell*, tagged ``[remove-input, nbval-ignore-output]`` (its values differ between machines)::

    from thesis_lib.provenance import environment_table
    environment_table(cfg)

*Thesis items.* Numbered items of the thesis are sphinx-proof blocks that keep the thesis's own
number: always ``:nonumber:``, the number first in the title, then the name in parentheses::

    ```{prf:definition} 1.1.4 (φ-layer)
    :label: def-1-1-4
    :nonumber:

    Let $\varphi$ be an activation function ...
    ```

renders as "Definition 1.1.4 (φ-layer)" (``proof_title_format: " %t"`` in ``_config.yml``). Labels are
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

import argparse
import hashlib
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = REPO_ROOT / "book"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
LIB_DIR = REPO_ROOT / "thesis_lib"
DEFAULT_OUTPUT_DIR = BOOK_DIR / "chapters"
SITE_DIR = BOOK_DIR / "_build" / "html"
FAILED_DIR = BOOK_DIR / "_build" / "failed"

KERNEL_NAME = "python3"
PARAMETER_NAMES = ("profile", "seed", "device", "data_dir", "retrain", "figures_dir")
PROFILES = ("quick", "full")
DEVICES = ("auto", "cpu", "cuda")  # as thesis_lib.config.DEVICES
# Only the profile is injected by default: figures_dir=None means ChapterConfig's default,
# <repo>/book/_build/figures as an absolute path, which stays right when nbval re-runs a committed
# notebook from book/chapters/ (a relative path would then resolve against book/chapters/).
DEFAULT_PARAMETERS: dict[str, Any] = {"profile": "full"}
CHAPTER_FILE = re.compile(r"^(?P<number>\d\d)_(?P<slug>[a-z0-9_]+)\.md$")

MATHJAX_DIR = "mathjax"  # <site>/mathjax/, NOT under _static/
MATHJAX_ENTRY = "tex-chtml.js"  # the component _config.yml's mathjax_path names
# What the site needs of MathJax's es5/ folder: the entry component and what it loads on demand
# (TeX extensions, CHTML fonts, the menu, accessibility and speech). The other combined components
# and the SVG output are left out.
MATHJAX_PARTS = (MATHJAX_ENTRY, "loader.js", "startup.js", "core.js", "input", "output/chtml", "output/chtml.js",
                 "ui", "a11y", "sre", "adaptors")

PROOF_PREFIXES = {"definition": "def", "theorem": "thm", "lemma": "lem", "proposition": "prop",
                  "algorithm": "alg", "corollary": "cor", "remark": "rem", "example": "ex"}


class UsageError(Exception):
    """A bad command line: exit status 2."""


class BuildError(Exception):
    """The build cannot go on (a chapter failed, a source is malformed, ...): exit status 1."""


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """Parse a ``-p`` value as YAML, as papermill does (``None`` is None, ``True`` is True, 3 is int)."""
    import yaml

    if text == "None":
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def validate_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parameters a chapter is executed with: the defaults updated by ``parameters``.

    Raises :class:`UsageError` naming the parameter for an unknown name, a profile other than
    quick/full, or a value of the wrong kind (``seed`` a non-negative int, ``retrain`` a bool,
    ``device`` one of auto/cpu/cuda, ``data_dir``/``figures_dir`` a path string or None).
    """
    unknown = [name for name in parameters if name not in PARAMETER_NAMES]
    if unknown:
        raise UsageError(f"unknown parameter {', '.join(map(repr, unknown))}: "
                         f"allowed are {', '.join(PARAMETER_NAMES)}")
    merged = {**DEFAULT_PARAMETERS, **parameters}
    if merged["profile"] not in PROFILES:
        raise UsageError(f"profile must be one of {', '.join(PROFILES)}; got {merged['profile']!r}")
    if "seed" in merged:
        seed = merged["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError(f"seed must be a non-negative integer; got {seed!r}")
    if "retrain" in merged and not isinstance(merged["retrain"], bool):
        raise UsageError(f"retrain must be True or False; got {merged['retrain']!r}")
    if "device" in merged and merged["device"] not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}; got {merged['device']!r}")
    for name in ("data_dir", "figures_dir"):
        if name in merged and merged[name] is not None and not isinstance(merged[name], str):
            raise UsageError(f"{name} must be a path or None; got {merged[name]!r}")
    return dict(sorted(merged.items()))


# --------------------------------------------------------------------------------------------------
# Chapters and their sources
# --------------------------------------------------------------------------------------------------

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


def input_hash(source: bytes, parameters: Mapping[str, Any], lib_dir: Path) -> str:
    """SHA-256 of a chapter's inputs: its source bytes, its parameters and every ``lib_dir/*.py``.

    Each part is framed by a tag and its length, so moving bytes between parts changes the hash;
    library files enter sorted by name, with their names (renaming a module changes the hash).
    Parameters enter as canonical JSON (sorted keys): their order on the command line does not matter.
    """
    digest = hashlib.sha256()

    def part(tag: str, data: bytes) -> None:
        digest.update(f"{tag}:{len(data)}:".encode())
        digest.update(data)

    part("source", bytes(source))
    part("parameters", json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    for path in sorted(Path(lib_dir).glob("*.py")):
        part("file", path.name.encode())
        part("content", path.read_bytes())
    return digest.hexdigest()


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


# --------------------------------------------------------------------------------------------------
# Executed notebooks
# --------------------------------------------------------------------------------------------------

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


def clean_executed(nb: Any, *, companion: Mapping[str, Any]) -> Any:
    """Strip what changes on every run from a papermill-executed notebook and tag its injected cell.

    Removes papermill's per-cell metadata (start/end times, durations, status) and the kernel's
    ``execution`` timings, keeps only ``parameters`` of papermill's notebook metadata (its
    timestamps, duration and temporary input/output paths go), adds ``remove-cell`` to the
    ``injected-parameters`` cell, recomputes the content-derived cell ids and records ``companion``
    (input hash, source, parameters) under ``metadata.companion``. Execution counts stay.
    """
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    papermill = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {"parameters": papermill.get("parameters", {})}
    nb.metadata["companion"] = dict(companion)
    return set_cell_ids(nb)


def write_atomic(nb: Any, path: Path) -> None:
    """Write ``nb`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    import nbformat

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ipynb.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_hash(path: Path) -> str | None:
    """The ``metadata.companion.input_hash`` of an executed notebook, or None if absent/unreadable."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return None
    return meta.get("companion", {}).get("input_hash")


def ensure_kernel() -> None:
    """Make sure kernel ``python3`` runs this interpreter; install its spec into the venv if missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    own = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if not own.exists():
        print(f"installing the {KERNEL_NAME} kernel spec into {sys.prefix}", flush=True)
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME],
                       check=True, capture_output=True)
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as exc:
        raise BuildError(f"kernel {KERNEL_NAME!r} not found even after installing it: {exc}") from exc
    exe = spec.argv[0]
    generic = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if exe not in generic and Path(exe).resolve() != Path(sys.executable).resolve():
        raise BuildError(f"kernel {KERNEL_NAME!r} ({spec.resource_dir}) runs {exe}, not {sys.executable}: "
                         f"remove that kernel spec or run the build from the environment it belongs to")


def _source_line(text: str, cell_source: str) -> int | None:
    index = text.find(cell_source.strip()) if cell_source.strip() else -1
    return None if index < 0 else text.count("\n", 0, index) + 1


def failed_dir_for(output_dir: Path) -> Path:
    """Where failed runs are kept: ``book/_build/failed/``, or ``OUTPUT_DIR/_failed/`` for another folder."""
    output_dir = Path(output_dir).resolve()
    return FAILED_DIR if output_dir == DEFAULT_OUTPUT_DIR.resolve() else output_dir / "_failed"


def execute_chapter(number: str, source: Path, output: Path, parameters: Mapping[str, Any],
                    digest: str) -> None:
    """Execute one chapter with papermill and write it atomically to ``output``.

    On failure the previous ``output`` is untouched, the failed run is kept (see
    :func:`failed_dir_for`) and a :class:`BuildError` names the chapter, the cell and its line in the
    source.
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    text = source.read_text(encoding="utf-8")
    nb = read_source(source)
    with tempfile.TemporaryDirectory(prefix=f"book-{number}-") as tmp:
        converted = Path(tmp) / f"{source.stem}.ipynb"
        executed = Path(tmp) / f"{source.stem}.executed.ipynb"
        jupytext.write(nb, converted, fmt="ipynb")
        env_before = os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION")
        os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silences debugpy's frozen-modules warning
        try:
            papermill.execute_notebook(
                str(converted), str(executed), parameters=dict(parameters), kernel_name=KERNEL_NAME,
                cwd=str(REPO_ROOT), progress_bar=False, log_output=False, request_save_on_cell_execute=False,
            )
        except PapermillExecutionError as exc:
            failed_dir = failed_dir_for(output.parent)
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept = failed_dir / f"{source.stem}.ipynb"
            if executed.exists():
                shutil.copyfile(executed, kept)
            line = _source_line(text, exc.source)
            where = f"{source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source}"
            where += f" line {line}" if line else ""
            first = (exc.source.strip().splitlines() or [""])[0][:80]
            raise BuildError(
                f"chapter {number} failed in cell In [{exc.exec_count}] ({where}: {first!r}): "
                f"{exc.ename}: {exc.evalue}\n  the failed run is in {kept}; "
                f"{output.name} was left as it was"
            ) from None
        except Exception as exc:  # kernel died, timeout, ...
            raise BuildError(f"chapter {number} failed: {type(exc).__name__}: {exc}; "
                             f"{output.name} was left as it was") from None
        finally:
            if env_before is None:
                os.environ.pop("PYDEVD_DISABLE_FILE_VALIDATION", None)
            else:
                os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = env_before
        result = nbformat.read(executed, as_version=4)
    rel = source.relative_to(REPO_ROOT).as_posix() if source.is_relative_to(REPO_ROOT) else source.name
    clean_executed(result, companion={"input_hash": digest, "source": rel, "parameters": dict(parameters)})
    write_atomic(result, output)


# --------------------------------------------------------------------------------------------------
# --check-sources
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

def mathjax_source() -> Path:
    """MathJax 3's ``es5`` folder inside the installed ``django-static-mathjax``."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("MathJax not found: install django-static-mathjax==3.2.2.1 (pyproject's 'book' extra)")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_ENTRY).exists():
        raise BuildError(f"MathJax's {MATHJAX_ENTRY} is not in {es5}")
    return es5


def install_mathjax(site_dir: Path) -> Path:
    """Copy what the site needs of MathJax 3 to ``site_dir/mathjax/``; return that folder."""
    source, target = mathjax_source(), Path(site_dir) / MATHJAX_DIR
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dst)
    return target


class _AssetParser(html.parser.HTMLParser):
    """Collect the ``src`` of ``<script>`` and the ``href`` of ``<link>`` tags of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.assets.append((tag, value))


def check_site_assets(site_dir: Path) -> list[str]:
    """Every ``<script src>`` and ``<link href>`` of every page must be a file of the site.

    Pages are the site's ``*.html`` outside ``_static/`` (which holds the theme's Jinja templates)
    and ``mathjax/``.
    Returns one message per asset that is an external URL (``http:``, ``https:``, ``//host``) or a
    relative path to a file that does not exist.
    """
    site_dir = Path(site_dir)
    problems: list[str] = []
    for page in sorted(site_dir.rglob("*.html")):
        if page.relative_to(site_dir).parts[0] in ("_static", MATHJAX_DIR):
            continue  # theme templates (Jinja, not pages) and MathJax's own files
        parser = _AssetParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(site_dir)
        for tag, url in parser.assets:
            if re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", url, re.I):
                if not url.startswith(("data:", "#")):
                    problems.append(f"{rel}: <{tag}> needs the network: {url}")
                continue
            target = (page.parent / url.split("#")[0].split("?")[0]).resolve()
            if not target.exists():
                problems.append(f"{rel}: <{tag}> points at a missing file: {url}")
    return problems


def render(book_dir: Path, *, fresh: bool) -> None:
    """Render the book with Jupyter Book (warnings are errors), install MathJax and check the assets."""
    jb = Path(sys.executable).parent / "jupyter-book"
    command = [str(jb) if jb.exists() else "jupyter-book", "build", str(book_dir), "--builder", "html",
               "-W", "-n", "--keep-going"] + (["--all"] if fresh else [])
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
        raise BuildError(f"jupyter-book build failed (exit {done.returncode}):\n{tail}")
    site = Path(book_dir) / "_build" / "html"
    install_mathjax(site)
    problems = check_site_assets(site)
    if problems:
        raise BuildError("the site is not self-contained:\n  " + "\n  ".join(problems[:30]))


def _toc_chapter_files(book_dir: Path) -> list[Path]:
    import yaml

    toc = yaml.safe_load((Path(book_dir) / "_toc.yml").read_text(encoding="utf-8"))
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return [Path(book_dir) / f"{f}.ipynb" for f in files if f.startswith("chapters/")]


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="book/build.py",
        description="Execute the chapters (notebooks/NN_slug.md) with papermill and render the book.",
        epilog="Conventions for chapter authors: see the docstring of book/build.py.",
    )
    parser.add_argument("--chapter", action="append", metavar="NN",
                        help="only this chapter (e.g. 03); repeatable; default: all")
    parser.add_argument("--profile", metavar="{quick,full}",
                        help="shorthand for -p profile VALUE (default: full)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help=f"a chapter parameter ({', '.join(PARAMETER_NAMES)}); VALUE is parsed as YAML "
                             "like papermill's -p; repeatable")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="where executed notebooks go (default: book/chapters); "
                             "rendering needs the default, so combine another folder with --no-render")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR,
                        help="where the chapter sources are (default: notebooks)")
    parser.add_argument("--force", action="store_true",
                        help="execute every selected chapter even if it is up to date; re-render every page")
    parser.add_argument("--no-render", action="store_true", help="execute only; do not run jupyter-book")
    parser.add_argument("--check-sources", action="store_true",
                        help="only check that each executed notebook matches its source; execute nothing")
    return parser


def collect_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters from ``-p`` and ``--profile``, validated (see :func:`validate_parameters`)."""
    given: dict[str, Any] = {}
    for name, value in args.parameter:
        if name in given:
            raise UsageError(f"parameter {name!r} given twice")
        given[name] = parse_value(value)
    if args.profile is not None:
        if "profile" in given and given["profile"] != args.profile:
            raise UsageError(f"--profile {args.profile!r} contradicts -p profile {given['profile']!r}")
        given["profile"] = args.profile
    return validate_parameters(given)


def run(args: argparse.Namespace) -> int:
    parameters = None if args.check_sources else collect_parameters(args)
    chapters = discover_chapters(args.notebooks_dir)
    if not chapters:
        raise UsageError(f"no chapter sources NN_slug.md in {args.notebooks_dir}")
    selected = select_chapters(chapters, args.chapter)
    output_dir = Path(args.output_dir).resolve()

    if args.check_sources:
        problems = check_sources(selected, output_dir, all_chapters=not args.chapter)
        for problem in problems:
            print(f"MISMATCH {problem}", file=sys.stderr)
        if not problems:
            print(f"sources match: {len(selected)} chapter(s) in {output_dir}")
        return 1 if problems else 0

    assert parameters is not None
    if not args.no_render and output_dir != DEFAULT_OUTPUT_DIR.resolve():
        raise UsageError("--output-dir other than book/chapters cannot be rendered: add --no-render")
    problems = [f"chapter {n}: {p}" for n, s in selected.items()
                for p in lint_proof_blocks(s.read_text(encoding="utf-8"), s.name)]
    if problems:
        raise BuildError("malformed thesis blocks (see book/build.py's docstring):\n  " + "\n  ".join(problems))

    shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
    print(f"parameters: {shown}; notebooks to {output_dir}", flush=True)
    kernel_ready = False
    failures: list[str] = []
    started = time.perf_counter()
    for number, source in selected.items():
        t0 = time.perf_counter()
        output = output_dir / f"{source.stem}.ipynb"
        digest = input_hash(source.read_bytes(), parameters, LIB_DIR)
        if not args.force and stored_hash(output) == digest:
            print(f"chapter {number} {source.stem}: up to date ({time.perf_counter() - t0:.1f} s)", flush=True)
            continue
        if not kernel_ready:
            ensure_kernel()
            kernel_ready = True
        try:
            execute_chapter(number, source, output, parameters, digest)
        except BuildError as exc:
            failures.append(str(exc))
            print(f"chapter {number} {source.stem}: FAILED ({time.perf_counter() - t0:.1f} s)\n  {exc}",
                  file=sys.stderr, flush=True)
            continue
        print(f"chapter {number} {source.stem}: executed ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"chapters: {time.perf_counter() - started:.1f} s", flush=True)
    if failures:
        raise BuildError(f"{len(failures)} chapter(s) failed; the book was not rendered")

    if not args.no_render:
        missing = [p for p in _toc_chapter_files(BOOK_DIR) if not p.exists()]
        if missing:
            raise BuildError("chapters in book/_toc.yml have not been executed: "
                             + ", ".join(p.name for p in missing) + " (run book/build.py without --chapter)")
        t0 = time.perf_counter()
        render(BOOK_DIR, fresh=args.force)
        print(f"rendered {SITE_DIR.relative_to(REPO_ROOT)} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        return run(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
