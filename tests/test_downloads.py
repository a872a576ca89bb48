"""Each chapter page's downloads (book/website.py) and the browser check's test of what arrives
(book/browser_check.py's ``download_problems``); no browser runs here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
import website  # noqa: E402
from sources import BuildError  # noqa: E402

_spec = importlib.util.spec_from_file_location("browser_check", ROOT / "book" / "browser_check.py")
browser_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_check)

PAGE = ('<html><body><nav><h1>nav</h1></nav><article class="bd-article"><section id="x">'
        '<h1>Training<a class="headerlink" href="#x">#</a></h1><p>text</p></section></article></body></html>')
HEADER = "---\njupytext:\n  text_representation:\n    extension: .md\n---\n\n# Training\n"


@pytest.fixture()
def book(tmp_path: Path) -> tuple[Path, Path]:
    book_dir, notebooks = tmp_path / "book", tmp_path / "notebooks"
    (book_dir / "chapters").mkdir(parents=True)
    notebooks.mkdir()
    (book_dir / "intro.md").write_text("# Intro\n\n```{toctree}\n:caption: Chapters\n:hidden:\n\nchapters/01_a\n"
                                      "chapters/02_b\n```\n\n```{toctree}\n:hidden:\n\nthesis_index\n```\n")
    for stem in ("01_a", "02_b"):
        (book_dir / "chapters" / f"{stem}.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    (notebooks / "01_a.md").write_text(HEADER)  # 02_b has no source
    return book_dir, notebooks


def test_chapter_downloads_pairs_each_chapter_page_with_its_notebook_and_source(book: tuple[Path, Path]) -> None:
    book_dir, notebooks = book
    result = website.chapter_downloads(book_dir, notebooks)
    assert [page for page, _ in result] == ["chapters/01_a.html", "chapters/02_b.html"]
    assert [f.name for f in result[0][1]] == ["01_a.ipynb", "01_a.md"]
    assert [f.name for f in result[1][1]] == ["02_b.ipynb"]


def test_the_block_links_relatively_with_the_download_attribute() -> None:
    block = website.download_block("chapters/02_b.html", [Path("x/02_b.ipynb"), Path("y/02_b.md")])
    assert 'href="../_downloads/chapters/02_b.ipynb" download="02_b.ipynb"' in block
    assert 'href="../_downloads/chapters/02_b.md" download="02_b.md"' in block
    assert block.count('class="chapter-download ') == 2
    assert 'href="_downloads/chapters/t.md"' in website.download_block("top.html", [Path("t.md")])


def test_the_block_goes_after_the_article_heading_once() -> None:
    block = website.download_block("chapters/02_b.html", [Path("02_b.ipynb")])
    once = website.inject_download_block(PAGE, block)
    assert once.index(block) == once.index("</h1>", once.index("bd-article")) + len("</h1>")
    assert website.inject_download_block(once, block) == once  # a second render does not add a second
    other = website.download_block("chapters/02_b.html", [Path("02_b.md")])
    assert website.inject_download_block(once, other).count("chapter-downloads -->") == 2  # replaced
    assert "02_b.ipynb" not in website.inject_download_block(once, other)
    with pytest.raises(BuildError):
        website.inject_download_block("<html><body></body></html>", block)


def test_install_downloads_copies_the_files_and_links_them(book: tuple[Path, Path], tmp_path: Path) -> None:
    book_dir, notebooks = book
    site = tmp_path / "site"
    (site / "chapters").mkdir(parents=True)
    for stem in ("01_a", "02_b"):
        (site / "chapters" / f"{stem}.html").write_text(PAGE)
    copied = website.install_downloads(site, book_dir, notebooks)
    assert sorted(f.name for f in copied) == ["01_a.ipynb", "01_a.md", "02_b.ipynb"]
    assert (site / "_downloads/chapters/01_a.md").read_text() == HEADER
    page = (site / "chapters/01_a.html").read_text()
    for href in ("../_downloads/chapters/01_a.ipynb", "../_downloads/chapters/01_a.md"):
        assert f'href="{href}"' in page and (site / "chapters" / href).resolve().exists()
    assert website.check_site_assets(site) == []
    (site / "chapters/02_b.html").unlink()
    with pytest.raises(BuildError, match="02_b.html was not rendered"):
        website.install_downloads(site, book_dir, notebooks)


def test_download_problems_accepts_the_chapters_files_and_rejects_html() -> None:
    notebook = json.dumps({"cells": [{"cell_type": "markdown", "source": "# A"}], "nbformat": 4}).encode()
    assert browser_check.download_problems("01_a.ipynb", notebook, "01_a") == []
    assert browser_check.download_problems("01_a.md", HEADER.encode(), "01_a") == []
    html = b"<!DOCTYPE html><html><body>Training</body></html>"
    assert "HTML page" in browser_check.download_problems("01_a.ipynb", html, "01_a")[0]
    assert "HTML page" in browser_check.download_problems("01_a.md", html, "01_a")[0]
    assert "not JSON" in browser_check.download_problems("01_a.ipynb", b"{", "01_a")[0]
    assert "cells" in browser_check.download_problems("01_a.ipynb", b'{"cells": []}', "01_a")[0]
    assert "Jupytext" in browser_check.download_problems("01_a.md", b"# Training\n", "01_a")[0]
    assert "not the chapter's" in browser_check.download_problems("02_b.md", HEADER.encode(), "01_a")[0]
    assert "neither" in browser_check.download_problems("01_a.html", b"x", "01_a")[0]
