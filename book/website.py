r"""The rendered site: Jupyter Book's HTML, MathJax 3 served from the site itself, and a check that
no page needs the network. Used by ``book/build.py``.
"""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sources import REPO_ROOT, BuildError

MATHJAX_DIR = "mathjax"  # <site>/mathjax/, NOT under _static/
MATHJAX_ENTRY = "tex-chtml.js"  # the component _config.yml's mathjax_path names
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


def toc_chapter_files(book_dir: Path) -> list[Path]:
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
