# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.cfg setup.py
	$(PY) -m pip install -q --use-pep517 -e .
	touch $@

$(TEST_STAMP): $(PY) setup.cfg setup.py
	$(PY) -m pip install -q --use-pep517 -e '.[test]'
	touch $@

demo: $(STAMP)
	$(PY) examples/wordcount.py

test: $(TEST_STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info
