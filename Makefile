# Every target builds its own .venv first, so a fresh clone needs only Python 3.10+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= dev,parquet,text,vision,tensorboard,ray,lightning,peers
PYTEST_WORKERS ?= 2

FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install data lint test bench demo clean

install: $(VENV)/.installed data

# Fashion-MNIST from Debian's dataset-fashion-mnist (the real-data tests and suites read it).
# Never fatal: without apt or root, only what needs the files is skipped, with a message.
data:
	@if [ -f $(FMNIST) ]; then echo "Fashion-MNIST: found in /usr/share/datasets/fashion-mnist"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: no apt-get here; its tests are skipped (see: gradretention data)"; \
	elif (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: installed dataset-fashion-mnist"; \
	else echo "Fashion-MNIST: 'apt-get install dataset-fashion-mnist' failed (root needed?); its tests are skipped"; fi

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel on disk, never the CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

lint: install
	$(PY) -m ruff check src tests benchmarks examples

test: install data
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup tests

bench: install
	$(PY) -m gradretention bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
