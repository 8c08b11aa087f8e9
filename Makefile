# The two commands: `make up` runs the whole stack locally, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test unit integration bench docs clean

# (Re)install when pyproject.toml changes: every extra ([all]: router, archive, HTTP bridge,
# MQTT, host node), the tests' and the docs' tools. bjdata (pulled in by crossbar through
# autobahn[serialization]) is published as an sdist that builds against NumPy 1.x and
# prints a NumPy-ABI traceback on every import under NumPy 2; its pure-Python build
# (PYBJDATA_NO_EXTENSION=1) is clean, and datasock never speaks UBJSON anyway.
# Each step prints one progress line (`make up` is quiet otherwise; a failing step shows pip's output).
$(STAMP): pyproject.toml
	@echo "[1/4] virtualenv $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@echo "[2/4] installing datasock[all] and the test and docs tools into $(VENV) (a few minutes the first time)"
	@PYBJDATA_NO_EXTENSION=1 $(BIN)/pip install --quiet --no-cache-dir --force-reinstall --no-deps "bjdata>=0.6"
	@$(BIN)/pip install --quiet -e ".[all,test,docs]"
	@# schemathesis (API tests only) pulls anyio, which needs idna >= 2.8, while crossbar's
	@# metadata pins idna < 2.6, which its code does not need (the router runs and is tested
	@# with idna 3): one resolve cannot satisfy both, so schemathesis comes on its own, without
	@# pip's warning about that one known pin; `pip check` then must find nothing else
	@$(BIN)/pip install --quiet --no-warn-conflicts "schemathesis>=4.0"
	@if $(BIN)/pip check | grep -v -e '^crossbar [^ ]* has requirement idna<' -e '^No broken requirements'; \
		then echo "pip check: broken requirements above"; exit 1; fi
	@touch $(STAMP)

# uPlot for the web page (docs/web.rst), from npm into .cache/web/ (served by the bridge, never committed)
UPLOT := .cache/web/node_modules/uplot/dist/uPlot.esm.js
$(UPLOT):
	@echo "[3/4] uPlot for the web page (npm, into .cache/web)"
	@mkdir -p .cache/web
	@cd .cache/web && npm install --silent --no-audit --no-fund --omit=dev --loglevel=error uplot@1 >/dev/null

up: $(STAMP) $(UPLOT)
	@echo "[4/4] starting the stack (datasock up; Ctrl-C stops it)"
	@$(BIN)/datasock up

# Node-RED 4 for the end-to-end Node-RED test (npm, into .cache/)
NODERED := .cache/node-red/node_modules/node-red/red.js
$(NODERED):
	sh tests/nodered/install.sh

# The tests run on JOBS pytest-xdist workers, one test file per worker at a time, the
# longest files first (tests/conftest.py); the Docker compose test waits on Docker beside the
# rest. `make test JOBS=0` runs them serially, in one process.
JOBS ?= 4
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile --no-loadscope-reorder

test: $(STAMP) $(NODERED) $(UPLOT)
	$(PYTEST) tests

unit: $(STAMP)
	$(PYTEST) tests/unit

integration: $(STAMP) $(UPLOT)
	$(PYTEST) tests/integration

bench: $(STAMP)
	$(BIN)/python bench/rpc.py
	$(BIN)/python bench/archive.py --mysql
	$(BIN)/python bench/mqtt.py
	$(BIN)/python bench/grafana.py

docs: $(STAMP)
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build .cache
