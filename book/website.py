r"""The rendered site: Sphinx's HTML (``book/conf.py``), MathJax 3 served from the site itself, and a check
that no page needs the network. Used by ``book/build.py``.
"""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sources import NOTEBOOKS_DIR, REPO_ROOT, BuildError

MATHJAX_DIR = "mathjax"  # <site>/mathjax/, NOT under _static/
MATHJAX_ENTRY = "tex-chtml.js"  # the component conf.py's mathjax_path names
# What the site needs of MathJax's es5/ folder: the entry component and what it loads on demand
# (TeX extensions, CHTML fonts, the menu, accessibility and speech). The other combined components
# and the SVG output are left out.
MATHJAX_PARTS = (MATHJAX_ENTRY, "loader.js", "startup.js", "core.js", "input", "output/chtml", "output/chtml.js",
                 "ui", "a11y", "sre", "adaptors")


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


def sphinx_build(book_dir: Path, builder: str, *, fresh: bool = False) -> Path:
    """Run ``sphinx-build`` with ``builder`` into ``book_dir/_build/<builder>``, nitpicky and with warnings as
    errors (``-n -W --keep-going``); ``fresh`` reads every source again (``-E``). Returns the output folder.
    The html builder also gets an ``index.html`` that forwards to the root page."""
    book_dir = Path(book_dir)
    out = book_dir / "_build" / builder
    command = [sys.executable, "-m", "sphinx", "-b", builder, "-n", "-W", "--keep-going", "-q",
               "-d", str(book_dir / "_build" / ".doctrees"), *(["-E"] if fresh else []), str(book_dir), str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
        raise BuildError(f"sphinx-build -b {builder} failed (exit {done.returncode}):\n{tail}")
    if builder == "html":
        (out / "index.html").write_text(f'<meta http-equiv="Refresh" content="0; url={ROOT_PAGE}.html" />\n',
                                        encoding="utf-8")
    return out


def render(book_dir: Path, *, fresh: bool) -> None:
    """Render the book with Sphinx (warnings are errors), install MathJax, add each chapter's downloads and
    check the assets."""
    site = sphinx_build(book_dir, "html", fresh=fresh)
    install_mathjax(site)
    install_downloads(site, book_dir, NOTEBOOKS_DIR)
    problems = check_site_assets(site)
    if problems:
        raise BuildError("the site is not self-contained:\n  " + "\n  ".join(problems[:30]))


ROOT_PAGE = "intro"  # conf.py's root_doc: its toctrees are the book's table of contents
_TOCTREE = re.compile(r"^```\{toctree\}\n(.*?)^```", re.M | re.S)


def toc_files(book_dir: Path) -> list[str]:
    """Every page of the table of contents (the root first, then the entries of the toctrees of the root page),
    as the toctrees name them: ``chapters/01_x``."""
    text = (Path(book_dir) / f"{ROOT_PAGE}.md").read_text(encoding="utf-8")
    files = [ROOT_PAGE]
    for block in _TOCTREE.findall(text):
        files += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")]
    return files


def toc_chapter_files(book_dir: Path) -> list[Path]:
    """The executed notebooks that the toc lists: ``book_dir/chapters/NN_slug.ipynb``."""
    return [Path(book_dir) / f"{f}.ipynb" for f in toc_files(book_dir) if f.startswith("chapters/")]


# --- Downloads: every chapter page links to its executed notebook and its Jupytext source ---------------

DOWNLOADS_DIR = "_downloads/chapters"  # <site>/_downloads/chapters/NN_slug.{ipynb,md}
_DOWNLOADS_START, _DOWNLOADS_END = "<!-- chapter-downloads -->", "<!-- /chapter-downloads -->"


def chapter_downloads(book_dir: Path, notebooks_dir: Path) -> list[tuple[str, list[Path]]]:
    """For each chapter of the table of contents: its page (``chapters/NN_slug.html``, relative to the
    site) and the files it offers, the executed notebook ``book/chapters/NN_slug.ipynb`` and its
    Jupytext source ``notebooks/NN_slug.md``, those that exist."""
    result = []
    for notebook in toc_chapter_files(book_dir):
        files = [notebook, Path(notebooks_dir) / f"{notebook.stem}.md"]
        result.append((f"chapters/{notebook.stem}.html", [f for f in files if f.exists()]))
    return result


def download_block(page: str, files: list[Path]) -> str:
    """The HTML note that links ``page`` (relative to the site) to ``files`` once they are copied to
    ``<site>/_downloads/chapters/``: relative links with the ``download`` attribute."""
    up = "../" * page.count("/")
    labels = {".ipynb": "executed notebook", ".md": "Jupytext source (MyST Markdown)"}
    items = "".join(
        f'<li><a class="chapter-download reference download" href="{up}{DOWNLOADS_DIR}/{f.name}" '
        f'download="{f.name}"><code>{f.name}</code></a> — {labels.get(f.suffix, f.suffix)}</li>'
        for f in files)
    return (f'{_DOWNLOADS_START}<div class="admonition note chapter-downloads">'
            f'<p class="admonition-title">Download this chapter</p><ul>{items}</ul></div>{_DOWNLOADS_END}')


def inject_download_block(page_html: str, block: str, marker: str = "chapter-downloads") -> str:
    """``page_html`` with ``block`` after the first heading of its article (after the ``<article>`` tag
    if it has none), replacing the block between ``<!-- marker -->`` and ``<!-- /marker -->`` that an
    earlier render injected (the status badge uses it too)."""
    page_html = re.sub(re.escape(f"<!-- {marker} -->") + ".*?" + re.escape(f"<!-- /{marker} -->"), "",
                       page_html, flags=re.S)
    article = re.search(r'<article class="bd-article"[^>]*>', page_html)
    if article is None:
        raise BuildError("no <article class=\"bd-article\"> in the page: where do the downloads go?")
    heading = re.compile(r"</h1>").search(page_html, article.end())
    at = heading.end() if heading else article.end()
    return page_html[:at] + block + page_html[at:]


def install_downloads(site_dir: Path, book_dir: Path, notebooks_dir: Path) -> list[Path]:
    """Copy each chapter's notebook and source to ``<site>/_downloads/chapters/`` and link them from its
    page; return the files copied."""
    site_dir, copied = Path(site_dir), []
    target = site_dir / DOWNLOADS_DIR
    target.mkdir(parents=True, exist_ok=True)
    for page, files in chapter_downloads(book_dir, notebooks_dir):
        page_path = site_dir / page
        if not page_path.exists():
            raise BuildError(f"{page} was not rendered")
        for f in files:
            shutil.copy2(f, target / f.name)
            copied.append(target / f.name)
        text = page_path.read_text(encoding="utf-8")
        page_path.write_text(inject_download_block(text, download_block(page, files)), encoding="utf-8")
    return copied
