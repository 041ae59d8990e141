# The two commands README.md promises: `make run` and `make test`.
# Both create .venv on first use and (re)install requirements.txt when it changes, then this package
# editable (`core` imports from the working tree; its dependencies are the pinned requirements.txt).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test lint sample bench

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo

sample: $(STAMP)
	$(PY) sample_data/make_sample.py

bench: $(STAMP)
	$(PY) bench/label_representations.py
