# Set-up and the two README commands. Everything installs into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data quickstart test test-fast lint

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST from Debian's package when we may install it; otherwise torchvision downloads it.
data:
	@if [ -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's dataset-fashion-mnist"; \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "Fashion-MNIST not in $(FASHION_MNIST): 'sudo apt-get install dataset-fashion-mnist'," \
		     "or let torchvision download it (online)"; \
	fi

quickstart: install data
	$(VENV)/bin/minc-lightning fit --config configs/quickstart.yaml

lint: install
	$(VENV)/bin/ruff check src tests examples benchmarks ops
	$(VENV)/bin/ruff format --check src tests examples benchmarks ops

# every test: the fast ones as test-fast runs them, then the slow ones (other processes, servers,
# signals) two at a time: they mostly wait on the processes they start, which share the cores
test: install data lint test-fast
	$(PY) -m pytest -m slow -n 2

# the tests that start no other process (signals, kills, DDP, shard writers, servers, the GPU
# check), spread over one pytest worker per core (each with one torch thread: tests/conftest.py)
test-fast: install data
	$(PY) -m pytest -m "not slow" -n auto
