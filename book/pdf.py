#!/usr/bin/env python
"""Print the whole book to one PDF, offline: Sphinx's single-page HTML, printed by Chromium.

Usage::

    python book/pdf.py                 # after python book/build.py: writes book/_build/pdf/book.pdf
    python book/pdf.py --no-build      # print the single-page HTML that is already there

Steps: ``sphinx-build -b singlehtml`` renders every page of the table of contents
(the executed notebooks as they are; nothing is executed) into ``book/_build/singlehtml/intro.html``;
MathJax 3 is copied beside it (``website.install_mathjax``: ``conf.py``'s ``mathjax_path``,
``../mathjax/tex-chtml.js`` after Sphinx's ``_static/``, lands on ``singlehtml/mathjax/`` as on the
HTML site) and the page is checked to need no network (``website.check_site_assets``). Debian's
Chromium (``/usr/bin/chromium``, through Playwright, every non-``file:`` request aborted) then opens
it, unfolds every folded cell (a PDF cannot be clicked), waits for the images and for MathJax's
typesetting (``MathJax.startup.promise``) and prints it (``page.pdf()``, A4, page numbers in the
footer). The PDF is written to a temporary file beside the target and renamed onto it, so a failed
run leaves the previous PDF whole.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import BOOK_DIR, REPO_ROOT, BuildError  # noqa: E402
from website import check_site_assets, install_mathjax, sphinx_build  # noqa: E402

SINGLEHTML_DIR = BOOK_DIR / "_build" / "singlehtml"
PDF_PATH = BOOK_DIR / "_build" / "pdf" / "book.pdf"
CHROMIUM = "/usr/bin/chromium"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
SINGLEHTML_MISSING = ("missing file: genindex.html", "missing file: search.html", "missing file: searchindex.js")

# Runs in the page before printing: unfolds, loads every image, waits for MathJax and the fonts.
_PREPARE = """
async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const images = Array.from(document.images);
  await Promise.all(images.map(img => { img.loading = 'eager'; return img.decode().catch(() => null); }));
  let mathjax = 'absent';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; mathjax = 'done'; } catch (e) { mathjax = 'failed: ' + e; }
  }
  if (document.fonts) { await document.fonts.ready; }
  return {
    images: images.length,
    broken: images.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src),
    mathElements: document.querySelectorAll('.math').length,
    containers: document.querySelectorAll('mjx-container').length,
    texErrors: document.querySelectorAll('mjx-merror').length,
    mathjax: mathjax,
  };
}
"""

_FOOTER = ('<div style="font-size:8px;width:100%;text-align:center;color:#666">'
           '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def build_singlehtml(book_dir: Path = BOOK_DIR) -> Path:
    """Render the book as one HTML page (warnings are errors), serve MathJax beside it; return the page."""
    site = sphinx_build(book_dir, "singlehtml")
    install_mathjax(site)
    # The one page still names the HTML site's index and search (a <link rel="index|search"> and the
    # search's searchindex.js), which the single page has not: nothing that the print needs.
    problems = [p for p in check_site_assets(site) if not p.endswith(SINGLEHTML_MISSING)]
    if problems:
        raise BuildError("the single-page book is not self-contained:\n  " + "\n  ".join(problems[:30]))
    return site / "intro.html"  # index.html only redirects to the root document


def print_pdf(page_path: Path, pdf_path: Path, *, chromium: str = CHROMIUM, timeout_s: float = 300.0) -> dict:
    """Print ``page_path`` to ``pdf_path`` (atomically) with Chromium; return what the page showed."""
    from playwright.sync_api import sync_playwright

    if not Path(chromium).exists():
        raise BuildError(f"no Chromium at {chromium}; apt-get install -y chromium")
    flags = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.tmp")
    external: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=flags)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

            def only_local(route) -> None:  # noqa: ANN001
                if route.request.url.startswith(LOCAL_SCHEMES):
                    route.continue_()
                else:
                    external.append(route.request.url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
            page.set_default_timeout(timeout_s * 1000)
            seen = page.evaluate(_PREPARE)
            page.emulate_media(media="print")
            page.pdf(path=str(tmp), format="A4", print_background=True, display_header_footer=True,
                     header_template="<span></span>", footer_template=_FOOTER,
                     margin={"top": "15mm", "bottom": "18mm", "left": "14mm", "right": "14mm"})
        finally:
            browser.close()
    problems = [f"request to a non-file URL: {url}" for url in external]
    problems += [f"JavaScript error: {e}" for e in errors]
    problems += [f"image not loaded: {src}" for src in seen["broken"]]
    if seen["mathElements"] and (seen["mathjax"] != "done" or seen["containers"] < seen["mathElements"]):
        problems.append(f"MathJax: {seen['mathjax']}, typeset {seen['containers']} of {seen['mathElements']}")
    if seen["texErrors"]:
        problems.append(f"{seen['texErrors']} TeX errors")
    if problems:
        tmp.unlink(missing_ok=True)
        raise BuildError("the PDF was not written:\n  " + "\n  ".join(problems[:30]))
    os.replace(tmp, pdf_path)
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="book/pdf.py", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=PDF_PATH, help=f"the PDF (default: {PDF_PATH})")
    parser.add_argument("--no-build", action="store_true", help="print the single-page HTML already built")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the Chromium binary (default: {CHROMIUM})")
    args = parser.parse_args(argv)
    try:
        t0 = time.perf_counter()
        page = SINGLEHTML_DIR / "intro.html"
        if not args.no_build:
            page = build_singlehtml()
            print(f"rendered {page.relative_to(REPO_ROOT)} ({time.perf_counter() - t0:.1f} s)", flush=True)
        elif not page.exists():
            raise BuildError(f"{page} does not exist: run without --no-build")
        seen = print_pdf(page, args.output, chromium=args.chromium)
    except BuildError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({size / 1e6:.1f} MB; {seen['images']} images, "
          f"{seen['containers']} formulas; {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
