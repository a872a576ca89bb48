#!/usr/bin/env python
"""Open the built book in headless Chromium over ``file://``: pages read offline, code fits.

Usage::

    python book/browser_check.py book/_build/html            # after python book/build.py

For the intro, every chapter page (``chapters/*.html``, the errata included), the benchmarks page, the
index of the thesis's items and the references it checks:

* no request failed (Playwright's ``requestfailed`` event) and no response had status >= 400;
* no request went to anything but a ``file:``/``data:``/``blob:`` URL (such requests are aborted);
* no JavaScript error was thrown (``pageerror``);
* every ``<img>`` decoded with ``naturalWidth > 0``;
* MathJax finished (``MathJax.startup.promise`` resolved) on pages with math, produced at least one
  ``mjx-container`` per math element of the page and no ``mjx-merror`` (a TeX error);
* on chapter pages, with every folded cell opened (``hide-input`` cells and other ``<details>``):
  no code block of a code cell, input or output, is wider than its box at the 1280 px wide
  viewport (``scrollWidth > clientWidth`` of its ``<pre>``), which would cut its lines off behind
  a scroll bar; the problem names the block and its first line that does not fit;

then saves a full-page screenshot to ``<site>/../screenshots/<page>.png``, prints one line per page
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


def pages_to_check(site: Path) -> list[Path]:
    """The intro, every chapter page (the errata are chapter 06), the benchmarks page, the index of the
    thesis's items and the references of ``site``.

    A page that the book must have but the site lacks is returned too, so that opening it fails.
    """
    pages = [site / "intro.html"]
    pages += sorted((site / "chapters").glob("*.html"))
    pages += [site / "benchmarks.html", site / "thesis_index.html", site / "references.html"]
    return pages


def code_width_problems(wide: list[dict[str, Any]]) -> list[str]:
    """One message per code block wider than its box (the ``wide`` list of ``_CODE_WIDTHS``)."""
    return [f"code cut off ({block['part']}, {block['scrollWidth']} px of content in a "
            f"{block['clientWidth']} px box), first line that does not fit: {block['line']!r}"
            for block in wide]


def check_page(context: Any, page_path: Path, screenshot: Path, timeout_ms: int,
               code_widths: bool = False) -> tuple[list[str], str]:
    """Open one page; return its problems and a short description of what was seen.

    With ``code_widths`` (the chapter pages) the page is also checked for code blocks wider than
    their box, after the screenshot, with every folded block opened.
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
    except Exception as exc:  # navigation timeout, crash, ...
        problems.append(f"could not load: {type(exc).__name__}: {exc}")
        page.close()
        return problems, ""
    page.close()
    for url in requests:
        if not url.startswith(LOCAL_SCHEMES):
            problems.append(f"request to a non-file URL: {url}")
    problems += [f"image not loaded: {src}" for src in seen["broken"]]
    if seen["mathElements"]:
        if seen["mathjax"] != "done":
            problems.append(f"MathJax did not finish typesetting ({seen['mathjax']})")
        elif seen["containers"] < seen["mathElements"]:
            problems.append(f"MathJax typeset {seen['containers']} of {seen['mathElements']} "
                            "math elements")
    problems += [f"TeX error: {text!r}" for text in seen["texErrors"]]
    summary = (f"requests={len(requests)} "
               f"images={seen['images'] - len(seen['broken'])}/{seen['images']} "
               f"math={seen['containers']}/{seen['mathElements']}")
    if widths is not None:
        problems += code_width_problems(widths["wide"])
        summary += f" code={widths['blocks'] - len(widths['wide'])}/{widths['blocks']}"
    return problems, summary


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
        context = browser.new_context(viewport=VIEWPORT, service_workers="block")

        def only_local(route: Any) -> None:
            if route.request.url.startswith(LOCAL_SCHEMES):
                route.continue_()
            else:
                route.abort()  # recorded as a request to a non-file URL (and a failed request)

        context.route("**/*", only_local)
        for page_path in pages:
            rel = page_path.relative_to(site).as_posix()
            t0 = time.perf_counter()
            problems, summary = check_page(context, page_path, shots / f"{page_path.stem}.png",
                                           int(args.timeout * 1000),
                                           code_widths=page_path.parent.name == "chapters")
            status = "FAIL" if problems else "ok  "
            print(f"{status} {rel:45s} {summary} ({time.perf_counter() - t0:.1f} s)", flush=True)
            for problem in dict.fromkeys(problems):
                print(f"       {problem}", flush=True)
            failed += bool(problems)
        browser.close()
    print(f"{len(pages) - failed} of {len(pages)} pages passed; screenshots in {shots}")
    return 1 if failed or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
