# Quick start: `make run SCENARIO=tiny` (first run, under a minute), `make run` (default
# simulation, about 3 minutes) and `make test` (test suite).
# Both create the virtual environment .venv themselves; nothing but Python 3.11 and make is needed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCENARIO ?= default

.PHONY: setup run test lint format bench clean image test-cluster test-faults

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/smartnet run --scenario $(SCENARIO)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info results

# the one image of every compose service (README, "Cluster"); IMAGE=NAME:TAG, BASE: an image
# with Python 3.11 and pip, DOCKER_BUILD_FLAGS: e.g. --network=host
IMAGE ?= smartnet-cosim:latest
BASE ?= python:3.11-slim
DOCKER_BUILD_FLAGS ?=
image:
	docker build $(DOCKER_BUILD_FLAGS) --build-arg BASE=$(BASE) -t $(IMAGE) .

# tiny on a real container engine: a private dockerd, a base image from Debian's mirror,
# compose vs a local run, a killed DSO container (docs/cluster.md; needs root)
test-cluster: $(STAMP)
	$(BIN)/python scripts/test_cluster.py

# faults under `helics run --path runner.json` (a SIGKILLed federate host or broker of tiny;
# docs/cluster.md): minutes, so not in `make test`; run it in a network namespace of its own
# (HELICS ports), e.g. `ip netns exec NS make test-faults`
test-faults: $(STAMP)
	SMARTNET_HELICS_FAULTS=1 $(BIN)/python -m pytest tests/federation/test_faults_helics_run.py -v
