# make book   execute every notebook once (pytest + nbmake) and build the HTML strictly
# make test   unit tests, then `make book` (every notebook at the paper's settings, strict build)
# make bench  benchmarks (not part of `make test`)
# Each target creates .venv and installs attnlib with its book and test dependencies if missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE := build/stage
NBMAKE_TIMEOUT ?= 3000

.PHONY: venv unit notebooks book browser-deps browser test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch that lies on these machines; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[book,dev]"
	touch $@

venv: $(VENV)/.installed

unit: venv
	$(PY) -m pytest tests -m "not browser"

notebooks: venv
	$(PY) tools/stage_book.py $(STAGE)
	$(PY) -m pytest --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) --overwrite -p no:cacheprovider $$(cat $(STAGE)/notebooks.txt)

book: notebooks
	$(VENV)/bin/jupyter-book build $(STAGE) --all --path-output . --warningiserror --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Chromium for the browser test, from Debian's packages; without it the test is skipped with the reason.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	    echo "could not install chromium: the browser test will be skipped"; }

browser: venv browser-deps
	$(PY) -m pytest tests -m browser

test: unit book browser

bench: venv
	$(VENV)/bin/attnlib bench --out .

clean:
	rm -rf build _build
