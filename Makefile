# The companion's two commands are `make book` and `make test` (see README.md).
# Every target creates the virtual environment and installs what is missing; a second run installs nothing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= $(or $(THESIS_DATA_DIR),$(HOME)/.cache/thesis-companion)
CHROMIUM := /usr/bin/chromium
FASHION := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
QUICK_DIR := book/_build/quick
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export THESIS_DATA_DIR := $(DATA_DIR)

.PHONY: setup data book chapter test lint lock unit nbval nbval-kernels quick-chapters browser check-sources benchmark clean help reproduce pdf gpu-data

help:
	@echo "make book       build the book (set-up, data, execute changed chapters, render HTML)"
	@echo "make pdf        print the whole book to book/_build/pdf/book.pdf (after make book)"
	@echo "make test       run every test (unit tests, nbval on two kernel sets, quick-profile chapters, browser check)"
	@echo "make chapter CH=04 [ARGS='-p retrain true']   re-execute one chapter"
	@echo "make benchmark  time the training loop against a DataLoader reference"

# Everything installed comes from requirements.lock: exact versions, checked against their hashes.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# Resolve pyproject.toml's requirements again (pip-tools), pin them with hashes, derive environment.yml.
lock: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check pip-tools==7.6.2
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra test --extra book \
		--output-file requirements.lock pyproject.toml
	$(PY) tools/lock.py environment

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null

$(FASHION):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null

setup: $(STAMP) $(CHROMIUM) $(FASHION)

data: setup
	$(PY) -m thesis_lib.runtime.data fetch --fashion --data-dir "$(DATA_DIR)"

book: data
	$(PY) book/build.py

chapter: data
	@test -n "$(CH)" || (echo "usage: make chapter CH=04 [ARGS='-p profile quick']"; exit 2)
	$(PY) book/build.py --chapter $(CH) $(ARGS)

unit: data
	$(PY) -m pytest tests -q

check-sources: setup
	$(PY) book/build.py --check-sources

NBVAL = $(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider book/chapters
nbval: data check-sources
	$(NBVAL)

# The committed chapters again under a second set of CPU kernels (tools/kernels.py says what each variable
# switches): a number printed at more digits than holds across CPUs shows up here, not on a reader's machine.
SECOND_KERNELS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=SSE41
nbval-kernels: data check-sources
	env $(SECOND_KERNELS) $(PY) tools/kernels.py --expect-second >/dev/null
	env $(SECOND_KERNELS) $(NBVAL)

quick-chapters: data
	$(PY) book/build.py --profile quick --force --output-dir $(QUICK_DIR)/chapters -p figures_dir $(QUICK_DIR)/figures --no-render

# ruff (configured in pyproject.toml): the chapters' MyST sources through nbqa and jupytext, at 100
# characters a line (what a rendered page at 1280 px shows whole); the code at 120.
lint: $(STAMP)
	$(VENV)/bin/nbqa ruff notebooks --line-length=100
	$(VENV)/bin/ruff check thesis_lib tests book benchmarks tools
	$(PY) tools/lock.py check

# The whole book as one PDF: Jupyter Book's single-page HTML printed by Chromium (book/pdf.py).
# poppler-utils' pdftotext lets tests/test_pdf.py read the PDF back.
PDFTOTEXT := /usr/bin/pdftotext

$(PDFTOTEXT):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq poppler-utils >/dev/null

pdf: book $(PDFTOTEXT)
	$(PY) book/pdf.py

browser: book
	$(PY) book/browser_check.py book/_build/html

test: lint unit nbval nbval-kernels quick-chapters browser

benchmark: data
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/train_speed.py --epochs 2 --models "thesis AE" --load 1 --output benchmarks/RESULTS_load.md

# MNIST for the GPU machine (benchmarks/gpu.sh), which reaches no package index: the four IDX files
# gzipped into .gpu/ (about 11 MB, ignored by git; name .gpu in the device call's carry).
MNIST_FILES := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
gpu-data: data
	@mkdir -p .gpu
	for f in $(MNIST_FILES); do gzip -9 -n -c "$(DATA_DIR)/MNIST/raw/$$f" > .gpu/$$f.gz.tmp && mv .gpu/$$f.gz.tmp .gpu/$$f.gz; done

# Retrain every experiment as a Dask task graph into $(REPRODUCTION) (README: "Reproducing every result"),
# e.g. ARGS="--seeds 0 1 2", then execute chapters 4 and 5 against what it trained and compare them with the
# committed book ($(REPRODUCTION)/REPORT.md). `make reproduce --dry-run` (or -n) prints the plan: the `+` runs
# the line even under make's -n, and passes --dry-run on to the command.
REPRODUCTION ?= reproduction/runs
reproduce: $(STAMP)
	$(PY) -m thesis_lib.runtime.data fetch --data-dir "$(DATA_DIR)"
	+$(PY) -m thesis_lib.reproduction.reproduce --out "$(REPRODUCTION)" $(if $(findstring n,$(firstword -$(MAKEFLAGS))),--dry-run) $(ARGS)
	$(PY) book/reproduction.py --runs "$(REPRODUCTION)"

clean:
	rm -rf book/_build
