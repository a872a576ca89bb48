"""The PDF of the whole book (``make pdf``, book/pdf.py): skipped unless book/_build/pdf/book.pdf exists.

Reads the PDF back with poppler-utils (``pdftotext``, ``pdfinfo``, ``pdfimages``; ``make pdf`` installs
them): it has pages, the thesis index's 49 items (their number and title) in its text, and figures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PDF = ROOT / "book" / "_build" / "pdf" / "book.pdf"
INDEX = ROOT / "book" / "thesis_index.md"

pytestmark = [
    pytest.mark.skipif(not PDF.exists(), reason="no book/_build/pdf/book.pdf: run make pdf"),
    pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed"),
]


def index_items() -> list[tuple[str, str]]:
    """(item, title) of each row of the thesis index: ("Definition 1.1.1", "activation function")."""
    items = []
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        label = re.search(r"\{prf:ref\}`([^<`]+?)\s*<|<a [^>]*>([^<]+)</a>", cells[0])
        if label:
            items.append(((label.group(1) or label.group(2)).strip(), cells[1]))
    return items


def words(text: str) -> str:
    """Lower-case text with its whitespace collapsed and typographic ligatures undone."""
    text = text.replace("\ufb01", "fi").replace("\ufb02", "fl").replace("\u00ad", "")
    return " ".join(re.sub(r"-\n(?=[a-z])", "", text).split()).lower()


@pytest.fixture(scope="module")
def text() -> str:
    return words(subprocess.run(["pdftotext", "-layout", str(PDF), "-"], capture_output=True, text=True,
                                check=True).stdout)


def test_the_index_has_49_items() -> None:
    assert len(index_items()) == 49


def test_the_pdf_has_pages() -> None:
    info = subprocess.run(["pdfinfo", str(PDF)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    print(f"book.pdf: {pages} pages, {PDF.stat().st_size / 1e6:.1f} MB")
    assert pages > 50


def test_every_chapter_and_item_is_in_the_text(text: str) -> None:
    for chapter in ("neural networks", "training of neural networks", "errata", "references"):
        assert chapter in text
    missing = []
    for item, title in index_items():
        plain = [part for part in re.split(r"\$[^$]*\$", title) if part.strip()]  # math is typeset: no text
        if words(item) not in text or any(words(part) not in text for part in plain):
            missing.append(f"{item} ({title})")
    assert not missing, f"not in the PDF's text: {missing}"


def test_figures_are_embedded() -> None:
    listing = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True, check=True).stdout
    images = [line for line in listing.splitlines()[2:] if line.strip()]
    assert len(images) >= 20, f"only {len(images)} images in the PDF"
