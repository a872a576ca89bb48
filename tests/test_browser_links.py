"""The pure functions of book/browser_check.py: internal links and anchors, search results, narrow pages,
dark-mode image backgrounds (no browser needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "browser_check", Path(__file__).resolve().parents[1] / "book" / "browser_check.py")
browser_check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(browser_check)


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
    return tmp_path


def test_good_links_pass(tmp_path):
    site = _site(tmp_path, {
        "intro.html": '<a href="chapters/02.html#adam">Adam</a> <a href="#top">top</a> <p id="top"></p>'
                      '<a href="https://example.org/x#y">out</a> <a href="mailto:a@b.c">mail</a>'
                      '<a href="data:text/plain,hi">data</a> <a href="">self</a> <a href="chapters/">dir</a>',
        "chapters/02.html": '<h2 id="adam">Adam</h2><a href="../intro.html">back</a>'
                            '<a href="../_images/f%201.png">fig</a><a href="03.html#old">old</a>',
        "chapters/03.html": '<a name="old"></a>',
        "chapters/index.html": "",
        "_images/f 1.png": "",
    })
    assert browser_check.link_problems(site) == []


def test_missing_file_names_page_and_target(tmp_path):
    site = _site(tmp_path, {"intro.html": "", "chapters/01.html": '<a href="02.html">next</a>'})
    assert browser_check.link_problems(site) == [
        "chapters/01.html: link '02.html': no file chapters/02.html"]


def test_missing_anchor_names_page_fragment_and_target(tmp_path):
    site = _site(tmp_path, {"intro.html": '<a href="chapters/02.html#adamw">AdamW</a>',
                            "chapters/02.html": '<h2 id="adam">Adam</h2>'})
    assert browser_check.link_problems(site) == [
        "intro.html: link 'chapters/02.html#adamw': no id 'adamw' in chapters/02.html"]


def test_missing_anchor_on_the_same_page(tmp_path):
    site = _site(tmp_path, {"intro.html": '<a href="#nowhere">x</a>'})
    assert browser_check.link_problems(site) == ["intro.html: link '#nowhere': no id 'nowhere' in intro.html"]


def test_links_leaving_the_site(tmp_path):
    site = _site(tmp_path / "site", {"intro.html": '<a href="../outside.html">x</a><a href="/abs.html">y</a>'})
    (tmp_path / "outside.html").write_text("", encoding="utf-8")
    problems = browser_check.link_problems(site)
    assert problems == ["intro.html: link '../outside.html' leads out of the site",
                        "intro.html: link '/abs.html' is absolute (leads out of the site over file://)"]


def test_links_and_ids():
    hrefs, ids = browser_check.links_and_ids(
        '<section id="s"><a href="a.html#b" name="n">x</a><a>no href</a><img id="i" src="x.png"></section>')
    assert hrefs == ["a.html#b"]
    assert ids == {"s", "n", "i"}


def test_search_problems():
    assert browser_check.search_problems(["../chapters/02_training.html#adam"]) == []
    assert browser_check.search_problems(["chapters/02_training.html"]) == []
    assert browser_check.search_problems([]) == ["search found nothing"]
    assert browser_check.search_problems(["intro.html"]) == [
        "no search result links to chapters/02_training.html (results: intro.html)"]


def test_narrow_problems():
    assert browser_check.narrow_problems({"scrollWidth": 390, "innerWidth": 390, "culprits": []}) == []
    (problem,) = browser_check.narrow_problems(
        {"scrollWidth": 481, "innerWidth": 390, "culprits": ['<code class="literal"> ends at 481 px: x.y']})
    assert "390 px" in problem and "481 px" in problem and "code" in problem


@pytest.mark.parametrize("colour, expected", [("rgb(255, 255, 255)", 1.0), ("rgb(0, 0, 0)", 0.0),
                                              ("rgba(255, 255, 255, 0.5)", 1.0)])
def test_relative_luminance(colour, expected):
    assert browser_check.relative_luminance(colour) == pytest.approx(expected)


def test_dark_image_problems():
    white = {"src": "a.png", "colour": "rgb(255, 255, 255)", "on": "img"}
    grey = {"src": "b.png", "colour": "rgb(206, 214, 221)", "on": "img"}  # the theme's own panel: 0.66
    none = {"src": "c.png", "colour": "transparent", "on": "none"}
    assert browser_check.dark_image_problems({"theme": "dark", "images": [white]}) == []
    problems = browser_check.dark_image_problems({"theme": "dark", "images": [white, grey, none]})
    assert len(problems) == 2 and "b.png" in problems[0] and "c.png" in problems[1]
    assert browser_check.dark_image_problems({"theme": "light", "images": []}) == [
        "dark mode: the theme is 'light', not 'dark'"]
