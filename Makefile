# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test bench typecheck clean

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

# mypy follows no editable-install hooks, and the repository keeps actors_runtime in
# runtime/: check both packages under their installed names through links.
typecheck: $(TEST_STAMP)
	mkdir -p build/typecheck
	ln -sfn ../../runtime build/typecheck/actors_runtime
	ln -sfn ../../actors build/typecheck/actors
	cd build/typecheck && MYPYPATH=. ../../$(PY) -m mypy --strict -p actors -p actors_runtime

bench: $(STAMP)
	$(PY) bench/run.py --quick
	$(PY) bench/bench_redis.py
	$(PY) bench/bench_hosts.py

clean:
	rm -rf $(VENV) build dist *.egg-info
