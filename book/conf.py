# Sphinx configuration of the companion book, built with plain ``sphinx-build`` (book/website.py runs it).
#
# Build it with `python book/build.py` (see its docstring): it executes the chapters with papermill, renders
# this book, and copies MathJax into the site. The book must read offline: no launch buttons, no CDN, no
# analytics. It started from `jupyter-book config sphinx book/` (jupyter-book 1.0.4), less what only
# jupyter-book needed.

from pathlib import Path

project = "On variational autoencoders: a companion"
html_title = project
author = "the companion's authors, after the master's thesis of M. Sevkovych (2023)"
copyright = "2023"

root_doc = "intro"  # the table of contents is the toctree at the end of intro.md
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "README.md"]

extensions = [
    "myst_nb",
    "sphinx_book_theme",
    "sphinx_design",
    "sphinx_proof",
    "sphinxcontrib.bibtex",
    "sphinx_copybutton",
    "sphinx_togglebutton",
    "sphinx_tippy",
]

# The bibliography: every work the book cites is one entry of references.bib, cited with {cite:t}`key` or
# {cite:p}`key` and listed on the References page (references.md). tests/test_bibliography.py checks keys
# and finds hand-typed citations. {cite:t} reads "Kingma and Welling [2014]", {cite:p} reads "[Kingma and
# Welling, 2014]"; the References page labels its entries as in BibTeX's alpha style.
bibtex_bibfiles = ["references.bib"]
bibtex_reference_style = "author_year"

# papermill (driven by build.py) is the only executor; the book renders executed notebooks as they are.
nb_execution_mode = "off"
nb_merge_streams = True
# myst-nb would load require.js and the ipywidgets bundle from CDNs on pages with widget state.
nb_ipywidgets_js = {}
# Markdown outputs (the environment table that ends every chapter) are parsed as MyST, which has tables;
# myst-nb's default, CommonMark, shows a table as a paragraph of pipes.
nb_render_markdown_format = "myst"

myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "substitution"]
myst_url_schemes = ["mailto", "http", "https"]
suppress_warnings = ["myst.domains"]
numfig = True

# Thesis items keep the thesis's numbers: blocks are `:nonumber:` and carry the number in their title, so
# "```{prf:definition} 1.1.4 (φ-layer)" reads "Definition 1.1.4 (φ-layer)".
proof_title_format = " %t"

# Offline MathJax 3: build.py copies it from django-static-mathjax to <site>/mathjax/. Sphinx prefixes a
# relative mathjax_path with "_static/", so "../mathjax/..." lands on <site>/mathjax/ from every page (pages
# in sub-folders get "../_static/../mathjax/..."). It must not live under _static/: every .js there becomes
# a <script> on every page.
mathjax_path = "../mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = sorted(p.name for p in (Path(__file__).parent / "_static").glob("*.css"))
html_show_sourcelink = False
html_sourcelink_suffix = ""
# Sphinx's search page fetches each result's page to show a summary under it; over file:// the browser
# blocks fetch() (CORS), each result throws "Failed to fetch". Results without summaries.
html_show_search_summary = False
pygments_style = "sphinx"
html_theme_options = {
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_source_button": False,
    "launch_buttons": {"binderhub_url": "", "colab_url": "", "deepnote_url": "", "jupyterhub_url": "",
                       "thebe": False},
}

# --- Previews of cross-references -----------------------------------------------------------------------
# Hovering over a link to a block of the book ("Definition 2.1.5", a figure, a section) shows the block, as
# sphinx-tippy copies it into a script per page at build time. Popper and Tippy.js are served from the site
# (_static/previews/, see SOURCES.txt there); the previews of Wikipedia articles and DOIs, which sphinx-tippy
# fetches from the internet at build time, are off. MathJax typesets the math inside a preview.
tippy_js = ("previews/popper-2.11.8.min.js", "previews/tippy-bundle-6.3.7.umd.min.js")
tippy_enable_wikitips = False
tippy_enable_doitips = False
tippy_rtd_urls = []
tippy_enable_mathjax = True
tippy_props = {"placement": "auto-start", "maxWidth": 500, "interactive": False}
# sphinx-tippy's default blocks, except a block's title: sphinx-proof gives the title the block's id too, and
# the title, found after the block, would replace the whole block as its preview
tippy_tip_selector = "figure, table, img, p:not(.admonition-title), aside, div.admonition, div.literal-block-wrapper"
# a link to a whole page would preview the page's start; links to blocks and sections are what a reader hovers
tippy_skip_anchor_classes = ("headerlink", "sd-stretched-link", "chapter-download")


def _single_page(app, pagename, templatename, context, doctree) -> None:
    """The PDF's one page (``singlehtml``) has no in-page table of contents: the theme's links there would
    join two anchors ("#document-chapters/01_x#section"), which its scroll-spy script cannot resolve."""
    if app.builder.name == "singlehtml":
        context["secondary_sidebar_items"] = []


def setup(app) -> None:
    app.connect("html-page-context", _single_page, priority=600)  # after the theme fills the context
