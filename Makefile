# Two entry points for a fresh clone: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
STAMP_BROWSER := $(VENV)/.chromium
ABIS := $(wildcard indexer/abis/*.json)
SOURCES := $(wildcard contracts/*.sol) scripts/build_contracts.mjs

.PHONY: setup build demo test lint clean devchain-down browser

setup: $(STAMP_PY) $(STAMP_NPM) build/contracts/BUILD_INFO.json

$(STAMP_PY): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(STAMP_NPM): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: install Node.js 20+ and npm" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

build/contracts/BUILD_INFO.json: $(STAMP_NPM) $(SOURCES)
	node scripts/build_contracts.mjs

build: build/contracts/BUILD_INFO.json

# Debian's chromium renders the risk report in a test (tests/test_report.py). Installed when missing
# and we are root with apt-get; otherwise a warning, and that one test is skipped.
$(STAMP_BROWSER): $(STAMP_PY)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium (apt-get)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
	    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }; } \
	    || { echo "error: apt-get could not install chromium" >&2; exit 1; }; \
	else echo "warning: chromium not found and not root with apt-get: the report's browser test will be skipped" >&2; fi
	@if command -v chromium >/dev/null; then touch $@; fi

browser: $(STAMP_BROWSER)

demo: setup
	$(VENV)/bin/collateral-indexer demo --port $${DEMO_PORT:-8545} --days $${DEMO_DAYS:-0}

test: setup $(STAMP_BROWSER)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check .

devchain-down:
	$(VENV)/bin/collateral-indexer devchain down

clean:
	rm -rf $(VENV) node_modules build .devchain .devchain-demo .pytest_cache .ruff_cache
