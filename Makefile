# The two commands a user needs: `make course` and `make test`.
# Each creates .venv on first use and installs everything into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
# PyTorch's OpenMP threads otherwise spin while waiting: on a 2-core machine shared with
# a notebook kernel or a browser that slows CPU training up to 20-fold.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup course test lab lint clean-cache

setup: $(STAMP)

# torch and torchvision are installed together, in one resolver run, so the pair
# always matches; a machine-local CPU-only torch wheel has no torchvision build.
# --no-cache-dir: PyPI's Linux torch pulls several GB of CUDA libraries; caching the
# wheels as well as unpacking them doubles that, and a CI run once ran out of disk here.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet --no-cache-dir torch torchvision
	$(PIP) install --quiet -e ".[dev]"
	$(PY) -c "import torch, torchvision, faiss, sklearn, umap; print('reidlib env: torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

course: $(STAMP)
	$(PY) -m reidlib.course run
	$(PY) -m reidlib.course lint-build build

test: $(STAMP)
	$(PY) -m ruff check reidlib tests benchmarks notebooks
	$(PY) -m reidlib.course check
	$(PY) -m pytest -q -rs

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

lint: $(STAMP)
	$(PY) -m ruff check reidlib tests benchmarks notebooks

clean-cache:
	rm -rf data/cache build
