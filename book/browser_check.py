#!/usr/bin/env python
"""Open the built book in headless Chromium over ``file://``: pages read offline, code fits.

Usage::

    python book/browser_check.py book/_build/html            # after python book/build.py

For every page of the table of contents (the intro, the chapters, the errata and the appendices) and every
page of the library's reference it checks:

* no request failed (Playwright's ``requestfailed`` event) and no response had status >= 400;
* no request went to anything but a ``file:``/``data:``/``blob:`` URL (such requests are aborted; the
  line of each page counts them, ``external=0``);
* no JavaScript error was thrown (``pageerror``);
* every ``<img>`` decoded with ``naturalWidth > 0``;
* MathJax finished (``MathJax.startup.promise`` resolved) on pages with math, produced at least one
  ``mjx-container`` per math element of the page and no ``mjx-merror`` (a TeX error);
* on chapter pages, with every folded cell opened (``hide-input`` cells and other ``<details>``):
  no code block of a code cell, input or output, is wider than its box at the 1280 px wide
  viewport (``scrollWidth > clientWidth`` of its ``<pre>``), which would cut its lines off behind
  a scroll bar; the problem names the block and its first line that does not fit;
* on chapter pages, each download link (``a.chapter-download``: the executed notebook and its
  Jupytext source, which ``website.install_downloads`` copies to ``_downloads/chapters/``) is relative
  and, clicked, delivers a file (``page.expect_download()``) that is the chapter's: JSON with its
  cells for the ``.ipynb``, the Jupytext header for the ``.md``, not an HTML page;
* on chapter pages, the status badge (``a.chapter-status``, which ``status.install_badges`` puts under the
  title) is there once, links relatively to the chapter's row of ``status.html`` (``#status-NN``) and,
  clicked, opens that page scrolled to an element with that id;
* at a 390 px wide viewport: the page does not scroll sideways (``document.documentElement.scrollWidth
  <= window.innerWidth``; code blocks and wide tables scroll inside their own box); the problem names
  the elements that stick out;
* on chapter pages, the previews of cross-references (sphinx-tippy, ``conf.py``): links carry one, and
  hovering the first shows a preview with its content and its math typeset;
* in dark mode (``color_scheme="dark"``, the theme in its auto mode, so ``data-theme="dark"``): every
  image of a cell output or a figure sits on a light background (its own or its container's computed
  ``background-color``, relative luminance > 0.8), so that the figures' axes stay legible;

and, once for the site:

* Sphinx's search works offline: ``search.html?q=Adam`` lists a result linking to chapter 2
  (``chapters/02_training.html``), with no failed request and no JavaScript error;
* every internal link resolves (``link_problems``, in Python over the HTML files of the whole site):
  each relative ``<a href>`` points to a file of the site and its ``#fragment`` to an ``id`` (or
  ``<a name>``) of the target page;

then saves a full-page screenshot to ``<site>/../screenshots/<page>.png`` (at 390 px in
``screenshots/narrow/``, in dark mode in ``screenshots/dark/``), prints one line per page
and exits 1 if any page failed (2 if the site or Chromium is missing).

Chromium is Debian's (``apt-get install chromium``) at ``/usr/bin/chromium``, driven by Playwright
(its own browser download does not work on the project's machines), with the flags that
``/work/shared/TOOLCHAIN.md`` found necessary here (``--no-sandbox`` when run as root).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
VIEWPORT = {"width": 1280, "height": 900}

# Runs in the page once it has loaded: waits for images and MathJax, then reports.
_INSPECT = """
async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map(img => {
    img.loading = 'eager';
    return img.decode().catch(() => null);
  }));
  const broken = images.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src);
  const mathElements = document.querySelectorAll('.math').length;
  let mathjax = 'absent';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; mathjax = 'done'; } catch (e) { mathjax = 'failed: ' + e; }
  }
  if (document.fonts) { await document.fonts.ready; }
  return {
    images: images.length,
    broken: broken,
    mathElements: mathElements,
    mathjax: mathjax,
    containers: document.querySelectorAll('mjx-container').length,
    texErrors: Array.from(document.querySelectorAll('mjx-merror'))
      .map(e => e.textContent).slice(0, 5),
  };
}
"""

# Runs in a chapter page: opens every folded block (myst-nb puts hide-input cells in <details>),
# waits for the layout, and reports each <pre> of a code cell, input or output, whose content is
# wider than its box, with the first line that does not fit (measured in the <pre>'s own font).
_CODE_WIDTHS = r"""
async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const blocks = Array.from(document.querySelectorAll(
    '.cell .cell_input pre, .cell .cell_output pre'));
  const canvas = document.createElement('canvas').getContext('2d');
  const wide = [];
  for (const pre of blocks) {
    if (pre.scrollWidth <= pre.clientWidth) continue;
    const style = getComputedStyle(pre);
    canvas.font = style.font;
    const room = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const lines = pre.textContent.replace(/\n$/, '').split('\n');
    const first = lines.find(line => canvas.measureText(line).width > room)
      || lines.reduce((a, b) => (b.length > a.length ? b : a), '');
    wide.push({
      part: pre.closest('.cell_output') ? 'output' : 'input',
      scrollWidth: pre.scrollWidth,
      clientWidth: pre.clientWidth,
      line: first,
    });
  }
  return {blocks: blocks.length, wide: wide};
}
"""


def pages_to_check(site: Path, book_dir: Path | None = None) -> list[Path]:
    """Every page of the table of contents of ``book_dir`` (the toctrees of ``intro.md``; default the book
    beside this script), in its order, then every page of the library's reference (``api/``), if built.

    A page that the book must have but the site lacks is returned too, so that opening it fails.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from website import toc_files

    book_dir = Path(__file__).resolve().parent if book_dir is None else Path(book_dir)
    pages = [site / f"{name}.html" for name in toc_files(book_dir)]
    pages += sorted((site / "api").rglob("*.html")) if (site / "api").is_dir() else []
    return pages


def code_width_problems(wide: list[dict[str, Any]]) -> list[str]:
    """One message per code block wider than its box (the ``wide`` list of ``_CODE_WIDTHS``)."""
    return [f"code cut off ({block['part']}, {block['scrollWidth']} px of content in a "
            f"{block['clientWidth']} px box), first line that does not fit: {block['line']!r}"
            for block in wide]


# Runs in a page once it has loaded: the links that carry a preview (Tippy.js puts ``_tippy`` on each), the
# first of them marked for the mouse to hover.
_PREVIEW_LINKS = """
() => {
  const links = Array.from(document.querySelectorAll('article a[href]')).filter(a => a._tippy);
  if (links.length) { links[0].setAttribute('data-preview-probe', ''); }
  return {links: links.length, first: links.length ? links[0].textContent.trim() : ''};
}
"""
_SHOWN_PREVIEW = """
() => Array.from(document.querySelectorAll('[data-tippy-root]')).map(e => ({
  text: e.innerText.trim().slice(0, 80),
  math: e.querySelectorAll('mjx-container').length,
  mathSource: e.querySelectorAll('.math').length,
}))
"""


def preview_problems(previews: dict[str, Any], shown: list[dict[str, Any]]) -> list[str]:
    """What is wrong with a chapter page's previews: none at all, or the hovered link's preview did not show,
    showed nothing, or left its math untypeset."""
    if not previews["links"]:
        return ["no cross-reference shows a preview (sphinx-tippy's script did not run?)"]
    if not shown:
        return [f"hovering {previews['first']!r} showed no preview"]
    problems = [f"the preview of {previews['first']!r} is empty" for tip in shown if not tip["text"]]
    problems += [f"the preview of {previews['first']!r} shows {tip['mathSource']} formulas untypeset"
                 for tip in shown if tip["mathSource"] and not tip["math"]]
    return problems


def check_page(context: Any, page_path: Path, screenshot: Path, timeout_ms: int,
               code_widths: bool = False) -> tuple[list[str], str]:
    """Open one page; return its problems and a short description of what was seen.

    With ``code_widths`` (the chapter pages) the page is also checked for code blocks wider than
    their box, after the screenshot, with every folded block opened, and for previews of its cross-references:
    at least one link carries one, and hovering the first shows it, its math typeset.
    """
    problems: list[str] = []
    requests: list[str] = []
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("pageerror", lambda e: problems.append(f"JavaScript error: {e}"))
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        seen = page.evaluate(_INSPECT)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        widths = page.evaluate(_CODE_WIDTHS) if code_widths else None
        if code_widths:
            previews = page.evaluate(_PREVIEW_LINKS)
            if previews["links"]:
                page.hover("[data-preview-probe]", timeout=timeout_ms)
                page.wait_for_timeout(600)  # Tippy.js's delay, and MathJax typesetting the preview
            shown = page.evaluate(_SHOWN_PREVIEW)
    except Exception as exc:  # navigation timeout, crash, ...
        problems.append(f"could not load: {type(exc).__name__}: {exc}")
        page.close()
        return problems, ""
    page.close()
    external = [url for url in requests if not url.startswith(LOCAL_SCHEMES)]
    problems += [f"request to a non-file URL: {url}" for url in external]
    problems += [f"image not loaded: {src}" for src in seen["broken"]]
    if seen["mathElements"]:
        if seen["mathjax"] != "done":
            problems.append(f"MathJax did not finish typesetting ({seen['mathjax']})")
        elif seen["containers"] < seen["mathElements"]:
            problems.append(f"MathJax typeset {seen['containers']} of {seen['mathElements']} "
                            "math elements")
    problems += [f"TeX error: {text!r}" for text in seen["texErrors"]]
    summary = (f"requests={len(requests)} external={len(external)} "
               f"images={seen['images'] - len(seen['broken'])}/{seen['images']} "
               f"math={seen['containers']}/{seen['mathElements']}")
    if widths is not None:
        problems += code_width_problems(widths["wide"])
        summary += f" code={widths['blocks'] - len(widths['wide'])}/{widths['blocks']}"
        problems += preview_problems(previews, shown)
        summary += f" previews={previews['links']}"
    return problems, summary


def download_problems(name: str, data: bytes, chapter: str) -> list[str]:
    """What is wrong with the file ``name`` that a chapter page's download link delivered (``data``), if
    anything: an ``.ipynb`` must be the chapter's notebook (JSON with cells, one of them markdown), an
    ``.md`` its Jupytext source (a YAML header naming jupytext); neither may be an HTML page, and the
    name must be the chapter's (``chapter`` is ``NN_slug``)."""
    problems = []
    if Path(name).stem != chapter:
        problems.append(f"download {name!r} is not the chapter's ({chapter})")
    text = data.decode("utf-8", errors="replace")
    if text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
        return problems + [f"download {name!r} is an HTML page"]
    if name.endswith(".ipynb"):
        import json

        try:
            notebook = json.loads(text)
        except ValueError as exc:
            return problems + [f"download {name!r} is not JSON: {exc}"]
        cells = notebook.get("cells") if isinstance(notebook, dict) else None
        if not cells or not any(cell.get("cell_type") == "markdown" for cell in cells):
            problems.append(f"download {name!r} is JSON without the notebook's cells")
    elif name.endswith(".md"):
        header = text.split("\n---", 1)[0] if text.startswith("---\n") else ""
        if "jupytext" not in header:
            problems.append(f"download {name!r} has no Jupytext header")
    else:
        problems.append(f"download {name!r} is neither .ipynb nor .md")
    return problems


def check_downloads(context: Any, page_path: Path, timeout_ms: int) -> tuple[list[str], str]:
    """Click each download link (``a.chapter-download``) of a chapter page; check that the file arrives and
    that it is the chapter's notebook or source (``download_problems``).

    A link with the ``download`` attribute is a download where the browser honours it
    (``page.expect_download()``: the saved file is read). Over ``file://`` Chromium does not (a file page
    has an opaque origin): the link then opens the file itself, whose text (Chromium shows a JSON or
    Markdown file as plain text) is read from the page, after checking that it is the linked file and
    not an HTML page.
    """
    problems: list[str] = []
    arrived: list[str] = []
    hrefs: list[str] = []
    try:
        page = context.new_page()
        page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        hrefs = page.locator("a.chapter-download").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        page.close()
    except Exception as exc:  # navigation timeout, ...
        return [f"downloads: {type(exc).__name__}: {exc}"], "downloads=0"
    if sorted(Path(h).suffix for h in hrefs) != [".ipynb", ".md"]:
        problems.append(f"download links {hrefs}, not one .ipynb and one .md")
    for index, href in enumerate(hrefs):
        if href.startswith(("/", "file:", "http:", "https:", "data:")):
            problems.append(f"download link is not relative: {href[:80]}")
        expected = (page_path.parent / href).resolve()
        page = context.new_page()
        try:
            page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
            try:
                with page.expect_download(timeout=5000) as info:
                    page.locator("a.chapter-download").nth(index).click()
                download = info.value
                if download.failure():
                    raise RuntimeError(f"download of {href} failed: {download.failure()}")
                name, data, how = download.suggested_filename, Path(download.path()).read_bytes(), "saved"
            except Exception as exc:
                if "expect_download" not in str(exc) and "Timeout" not in type(exc).__name__:
                    raise
                page.wait_for_load_state("load", timeout=timeout_ms)  # no download: the link opened the file
                if page.url != expected.as_uri():
                    raise RuntimeError(f"{href} opened {page.url}, not {expected.as_uri()}") from None
                kind = page.evaluate("document.contentType")
                if kind == "text/html":
                    raise RuntimeError(f"{href} opened an HTML page") from None
                text = page.evaluate("(document.querySelector('body > pre') || document.body || "
                                     "document.documentElement).textContent")
                name, data, how = expected.name, text.encode("utf-8"), f"opened ({kind})"
            found = download_problems(name, data, page_path.stem)
            problems += found
            if not found:
                arrived.append(f"{Path(name).suffix[1:]} {how}")
        except Exception as exc:  # navigation timeout, not the linked file, ...
            problems.append(f"download {href}: {type(exc).__name__}: {exc}")
        page.close()
    return problems, f"downloads={len(arrived)}/{len(hrefs)} [{', '.join(arrived)}]"

def badge_problems(hrefs: list[str], chapter: str) -> list[str]:
    """What is wrong with the status badges ``hrefs`` (their ``href``) of the page of ``chapter`` (``NN_slug``):
    there must be one, a relative link to ``status.html#status-NN`` one folder up."""
    if len(hrefs) != 1:
        return [f"{len(hrefs)} status badges (a.chapter-status), not one"]
    expected = f"../status.html#status-{chapter[:2]}"
    return [] if hrefs[0] == expected else [f"status badge links to {hrefs[0]!r}, not {expected!r}"]


def check_badge(context: Any, page_path: Path, timeout_ms: int) -> tuple[list[str], str]:
    """Find the status badge of a chapter page (``badge_problems``), click it, and check that the status page
    opens at the chapter's row."""
    page = context.new_page()
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        badges = page.locator("a.chapter-status")
        hrefs = badges.evaluate_all("els => els.map(e => e.getAttribute('href'))")
        problems = badge_problems(hrefs, page_path.stem)
        if not problems:
            text = badges.first.inner_text()
            badges.first.click()
            page.wait_for_load_state("load", timeout=timeout_ms)
            target, _, anchor = hrefs[0].partition("#")
            if page.url != f"{(page_path.parent / target).resolve().as_uri()}#{anchor}":
                problems.append(f"the status badge opened {page.url}")
            elif not page.evaluate("id => document.getElementById(id) !== null", anchor):
                problems.append(f"status.html has no element with id {anchor!r}")
    except Exception as exc:  # navigation timeout, ...
        return [f"status badge: {type(exc).__name__}: {exc}"], "badge=?"
    finally:
        page.close()
    return problems, f"badge={'ok' if not problems else 'FAIL'} [{text if not problems else ''}]"

# --- Search, narrow screens, dark theme, internal links ------------------------------------------------

NARROW_VIEWPORT = {"width": 390, "height": 844}
SEARCH_TERM = "Adam"
SEARCH_TARGET = "chapters/02_training.html"
MIN_IMAGE_LUMINANCE = 0.8

# Runs in a page at the narrow viewport: the page's own width against the window's, and the widest
# elements that stick out of the window without a scrolling box around them (the culprits).
_NARROW = r"""
() => {
  const W = window.innerWidth;
  const culprits = [];
  if (document.documentElement.scrollWidth > W) {
    for (const el of document.querySelectorAll('.bd-main *')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.right <= W + 0.5) continue;
      let clipped = false;
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== 'visible') { clipped = true; break; }
      }
      if (clipped) continue;
      if (el.parentElement && el.parentElement.getBoundingClientRect().right > W + 0.5) continue;
      culprits.push(`<${el.tagName.toLowerCase()} class="${el.className}"> ends at ` +
        `${Math.round(r.right)} px: ${el.textContent.trim().slice(0, 60)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: W,
          culprits: culprits.slice(0, 5)};
}
"""

# Runs in a page in dark mode: the theme's mode, and for each image of a cell output or a figure
# the first background colour that is not transparent, from the image up through its containers.
_DARK_IMAGES = r"""
async () => {
  const images = Array.from(document.querySelectorAll('.cell_output img, figure img'));
  await Promise.all(images.map(img => { img.loading = 'eager'; return img.decode().catch(() => null); }));
  const backgrounds = images.map(img => {
    for (let el = img; el; el = el.parentElement) {
      const colour = getComputedStyle(el).backgroundColor;
      const m = colour.match(/[\d.]+/g);
      if (m && (m.length < 4 || parseFloat(m[3]) > 0)) {
        return {src: img.getAttribute('src'), colour: colour, on: el.tagName.toLowerCase()};
      }
    }
    return {src: img.getAttribute('src'), colour: 'transparent', on: 'none'};
  });
  return {theme: document.documentElement.dataset.theme, images: backgrounds};
}
"""


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance (0 black, 1 white) of a CSS ``rgb(...)``/``rgba(...)`` colour."""
    import re

    parts = [float(x) for x in re.findall(r"[\d.]+", colour)[:3]]
    if len(parts) < 3:
        raise ValueError(f"not an rgb() colour: {colour!r}")

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in parts)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def narrow_problems(seen: dict[str, Any]) -> list[str]:
    """The problem, if any, of a page at the narrow viewport (the result of ``_NARROW``)."""
    if seen["scrollWidth"] <= seen["innerWidth"]:
        return []
    culprits = "; ".join(seen["culprits"]) or "no single element found"
    return [f"page scrolls sideways at {seen['innerWidth']} px (scrollWidth {seen['scrollWidth']} px): "
            f"{culprits}"]


def dark_image_problems(seen: dict[str, Any]) -> list[str]:
    """The problems of a page in dark mode (the result of ``_DARK_IMAGES``): the theme must be dark and
    every output image or figure must sit on a light background (luminance > ``MIN_IMAGE_LUMINANCE``)."""
    if seen["theme"] != "dark":
        return [f"dark mode: the theme is {seen['theme']!r}, not 'dark'"]
    problems = []
    for image in seen["images"]:
        luminance = relative_luminance(image["colour"]) if image["colour"] != "transparent" else 0.0
        if luminance <= MIN_IMAGE_LUMINANCE:
            problems.append(f"dark mode: image {image['src']} sits on a dark background ({image['colour']} "
                            f"on <{image['on']}>, luminance {luminance:.2f})")
    return problems


def _evaluate_and_shoot(context: Any, page_path: Path, script: str, screenshot: Path,
                        timeout_ms: int) -> tuple[Any, str]:
    """Open ``page_path`` in ``context``, run ``script`` in it and save a full-page screenshot; return
    the script's result and an error message ("" when all went well)."""
    page = context.new_page()
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
        seen = page.evaluate(script)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        return seen, ""
    except Exception as exc:  # navigation timeout, crash, ...
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        page.close()


def check_narrow(context: Any, page_path: Path, screenshot: Path, timeout_ms: int) -> tuple[list[str], str]:
    """Open a page in ``context`` (390 px wide): it must not scroll sideways (``narrow_problems``)."""
    seen, error = _evaluate_and_shoot(context, page_path, _NARROW, screenshot, timeout_ms)
    if error:
        return [f"narrow ({NARROW_VIEWPORT['width']} px): could not load: {error}"], ""
    return narrow_problems(seen), f"width{NARROW_VIEWPORT['width']}={seen['scrollWidth']}"


def check_dark(context: Any, page_path: Path, screenshot: Path, timeout_ms: int) -> tuple[list[str], str]:
    """Open a page in ``context`` (``color_scheme="dark"``, the theme in auto mode): the theme is dark
    and the output images sit on a light panel (``dark_image_problems``)."""
    seen, error = _evaluate_and_shoot(context, page_path, _DARK_IMAGES, screenshot, timeout_ms)
    if error:
        return [f"dark mode: could not load: {error}"], ""
    problems = dark_image_problems(seen)
    light = len(seen["images"]) - sum("dark background" in p for p in problems)
    return problems, f"dark-images={light}/{len(seen['images'])}"


def search_problems(hrefs: list[str], target: str = SEARCH_TARGET) -> list[str]:
    """The problem, if any, of the result links ``hrefs`` of a search that must find ``target``."""
    if not hrefs:
        return ["search found nothing"]
    if not any(href.split("#")[0].endswith("/" + target) or href.split("#")[0] == target for href in hrefs):
        return [f"no search result links to {target} (results: {', '.join(hrefs[:8])})"]
    return []


def check_search(context: Any, site: Path, timeout_ms: int, term: str = SEARCH_TERM,
                 target: str = SEARCH_TARGET) -> tuple[list[str], str]:
    """Open ``search.html?q=<term>`` over ``file://`` and wait for Sphinx's search to finish; a result
    must link to ``target``, and no request may fail and no JavaScript error be thrown meanwhile (the
    result summaries, which Sphinx fetches, cannot load over ``file://``)."""
    problems: list[str] = []
    page = context.new_page()
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("pageerror", lambda e: problems.append(f"JavaScript error: {e}"))
    hrefs: list[str] = []
    try:
        page.goto((site / "search.html").resolve().as_uri() + f"?q={term}", wait_until="load",
                  timeout=timeout_ms)
        page.wait_for_function(
            "() => { const s = document.querySelector('#search-results p.search-summary');"
            " return s && /found|did not match/.test(s.textContent); }", timeout=timeout_ms)
        page.wait_for_timeout(300)  # the results are listed one by one, 5 ms apart
        hrefs = page.eval_on_selector_all("#search-results ul.search li > a",
                                          "els => els.map(e => e.getAttribute('href'))")
    except Exception as exc:
        problems.append(f"search did not finish: {type(exc).__name__}: {exc}")
    page.close()
    problems += search_problems(hrefs, target)
    return problems, f"q={term} results={len(hrefs)}"


class _LinkParser(HTMLParser):
    """Collects the ``href`` of every ``<a>`` and every ``id`` (and ``<a name>``) of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"] or "")
        if tag == "a":
            if attributes.get("name"):
                self.ids.add(attributes["name"] or "")
            if attributes.get("href") is not None:
                self.hrefs.append(attributes["href"] or "")


def links_and_ids(html: str) -> tuple[list[str], set[str]]:
    """The ``href`` of every ``<a>`` of the page ``html`` and the ids (and ``<a name>``) it defines."""
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    return parser.hrefs, parser.ids


def link_problems(site: Path) -> list[str]:
    """Every relative ``<a href>`` of every HTML page of ``site`` must point to a file of the site, and its
    ``#fragment``, if any, to an ``id`` (or ``<a name>``) of the target page. One message per broken link,
    naming the page, the link and what is missing. Links with a scheme (``http:``, ``mailto:``, ...) are
    not checked."""
    from urllib.parse import unquote, urlsplit

    site = site.resolve()
    parsed: dict[Path, tuple[list[str], set[str]]] = {}

    def parse(path: Path) -> tuple[list[str], set[str]]:
        if path not in parsed:
            parsed[path] = links_and_ids(path.read_text(encoding="utf-8", errors="replace"))
        return parsed[path]

    problems = []
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        for href in dict.fromkeys(parse(page)[0]):
            parts = urlsplit(href)
            if parts.scheme or parts.netloc:
                continue
            path = unquote(parts.path)
            if path.startswith("/"):
                problems.append(f"{rel}: link {href!r} is absolute (leads out of the site over file://)")
                continue
            target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(site):
                problems.append(f"{rel}: link {href!r} leads out of the site")
                continue
            if not target.is_file():
                problems.append(f"{rel}: link {href!r}: no file {target.relative_to(site).as_posix()}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in parse(target)[1]:
                problems.append(f"{rel}: link {href!r}: no id {fragment!r} in "
                                f"{target.relative_to(site).as_posix()}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="book/browser_check.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?", default=Path("book/_build/html"),
                        help="the built site (default: book/_build/html)")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="where the screenshots go (default: <site>/../screenshots)")
    parser.add_argument("--chromium", default=CHROMIUM,
                        help=f"the Chromium binary (default: {CHROMIUM})")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds per page (default: 60)")
    args = parser.parse_args(argv)

    site = args.site.resolve()
    if not (site / "intro.html").exists():
        print(f"{parser.prog}: error: {site} is not a built book (no intro.html); "
              f"run python book/build.py first", file=sys.stderr)
        return 2
    if not Path(args.chromium).exists():
        print(f"{parser.prog}: error: no Chromium at {args.chromium}; apt-get install -y chromium",
              file=sys.stderr)
        return 2
    shots = (args.screenshots or site.parent / "screenshots").resolve()

    from playwright.sync_api import sync_playwright

    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    flags = CHROMIUM_FLAGS + (["--no-sandbox"] if as_root else [])
    failed = 0
    pages = pages_to_check(site)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=flags)
        context = browser.new_context(viewport=VIEWPORT, service_workers="block", accept_downloads=True)

        def only_local(route: Any) -> None:
            if route.request.url.startswith(LOCAL_SCHEMES):
                route.continue_()
            else:
                route.abort()  # recorded as a request to a non-file URL (and a failed request)

        context.route("**/*", only_local)
        narrow = browser.new_context(viewport=NARROW_VIEWPORT, service_workers="block")
        dark = browser.new_context(viewport=VIEWPORT, service_workers="block", color_scheme="dark")
        narrow.route("**/*", only_local)
        dark.route("**/*", only_local)
        for page_path in pages:
            rel = page_path.relative_to(site).as_posix()
            t0 = time.perf_counter()
            problems, summary = check_page(context, page_path, shots / f"{page_path.stem}.png",
                                           int(args.timeout * 1000),
                                           code_widths=page_path.parent.name == "chapters")
            if page_path.parent.name == "chapters":
                more, seen = check_downloads(context, page_path, int(args.timeout * 1000))
                problems, summary = problems + more, f"{summary} {seen}"
                more, seen = check_badge(context, page_path, int(args.timeout * 1000))
                problems, summary = problems + more, f"{summary} {seen}"
            more, seen = check_narrow(narrow, page_path, shots / "narrow" / f"{page_path.stem}.png",
                                      int(args.timeout * 1000))
            problems, summary = problems + more, f"{summary} {seen}"
            more, seen = check_dark(dark, page_path, shots / "dark" / f"{page_path.stem}.png",
                                    int(args.timeout * 1000))
            problems, summary = problems + more, f"{summary} {seen}"
            status = "FAIL" if problems else "ok  "
            print(f"{status} {rel:45s} {summary} ({time.perf_counter() - t0:.1f} s)", flush=True)
            for problem in dict.fromkeys(problems):
                print(f"       {problem}", flush=True)
            failed += bool(problems)
        t0 = time.perf_counter()
        problems, summary = check_search(context, site, int(args.timeout * 1000))
        print(f"{'FAIL' if problems else 'ok  '} {'search.html?q=' + SEARCH_TERM:45s} {summary} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        for problem in dict.fromkeys(problems):
            print(f"       search.html?q={SEARCH_TERM}: {problem}", flush=True)
        site_failed = bool(problems)
        browser.close()
    t0 = time.perf_counter()
    problems = link_problems(site)
    print(f"{'FAIL' if problems else 'ok  '} {'internal links and anchors (all pages)':45s} "
          f"broken={len(problems)} ({time.perf_counter() - t0:.1f} s)", flush=True)
    for problem in problems:
        print(f"       {problem}", flush=True)
    site_failed += bool(problems)
    print(f"{len(pages) - failed} of {len(pages)} pages passed, {2 - site_failed} of 2 site checks "
          f"(search, links); screenshots in {shots}")
    return 1 if failed or site_failed or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
