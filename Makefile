# The two set-up commands of the README. Each creates .venv (with the pinned versions of constraints.txt) when it
# is missing or older than the files that define it, then runs.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export MTEB_CACHE ?= $(CURDIR)/.cache/mteb
export HF_HOME ?= $(CURDIR)/.cache/huggingface

.PHONY: demo test lint clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip>=23.2"
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,demo,faiss]"
	touch $(STAMP)

## The main job: evaluate the bundled MiniLM on the bundled SciFact test split (offline, no account).
demo: $(STAMP)
	$(VENV)/bin/syntriever demo --output runs/demo

## The test suite (offline; what CI runs).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q --timeout=600

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .cache runs .pytest_cache .ruff_cache
