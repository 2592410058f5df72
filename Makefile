# Every target builds its own .venv first, so a fresh clone needs only Python 3.10+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= dev,parquet,text,vision,tensorboard,ray,lightning,peers
PYTEST_WORKERS ?= 2

.PHONY: install test bench demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel on disk, never the CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

test: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup tests

bench: install
	$(PY) -m gradretention bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
