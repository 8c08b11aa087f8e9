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
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYBJDATA_NO_EXTENSION=1 $(BIN)/pip install --quiet --no-cache-dir --force-reinstall --no-deps "bjdata>=0.6"
	$(BIN)/pip install --quiet -e ".[all,test,docs]"
	# schemathesis (API tests) needs idna >= 2.8 while crossbar pins idna < 2.6, which
	# its code does not need: one resolve cannot satisfy both, so install it on its own
	$(BIN)/pip install --quiet "schemathesis>=4.0"
	touch $(STAMP)

# uPlot for the web page (docs/web.rst), from npm into .cache/web/ (served by the bridge, never committed)
UPLOT := .cache/web/node_modules/uplot/dist/uPlot.esm.js
$(UPLOT):
	mkdir -p .cache/web
	cd .cache/web && npm install --no-audit --no-fund --omit=dev --loglevel=error uplot@1

up: $(STAMP) $(UPLOT)
	$(BIN)/datasock up

# Node-RED 4 for the end-to-end Node-RED test (npm, into .cache/)
NODERED := .cache/node-red/node_modules/node-red/red.js
$(NODERED):
	sh tests/nodered/install.sh

test: $(STAMP) $(NODERED) $(UPLOT)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP) $(UPLOT)
	$(BIN)/python -m pytest -q tests/integration

bench: $(STAMP)
	$(BIN)/python bench/rpc.py
	$(BIN)/python bench/archive.py --mysql
	$(BIN)/python bench/mqtt.py
	$(BIN)/python bench/grafana.py

docs: $(STAMP)
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build .cache
