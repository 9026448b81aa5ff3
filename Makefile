# Two commands for a newcomer: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-deploy lint install dev clean lock

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (set PY=python3.x)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: this machine carries the CPU wheel locally; a looser pin would pull CUDA.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

# distributed (Ray): the cluster tests (pytest -m cluster) start real Ray and Redis clusters;
# otel: the tracing tests read spans from the SDK's in-memory exporter.
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,reports,distributed,otel,peers]'
	touch $@

install: $(STAMP)
dev: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/recserve demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the package arrows: [tool.importlinter] in pyproject.toml

test: lint
	$(BIN)/pytest

# requirements.lock: every runtime package pinned with its sha256 hashes, for Python 3.11 on Linux
# x86_64 (the image's platform); the Dockerfile installs exactly this. With the `otel` extra, so a
# deployment turns tracing on with RECSERVE_OTEL_ENDPOINT alone. Re-run after changing the
# dependencies in pyproject.toml (tests/ops/test_lock.py fails until you do). TORCH_WHEELS is where
# the torch CPU wheel is found: this machine keeps it on disk; elsewhere pass the CPU index's
# torch page.
TORCH_WHEELS ?= /opt/wheels
lock: $(BIN)/python
	$(BIN)/pip install -q -e '.[lock]'
	$(BIN)/uv pip compile pyproject.toml requirements-torch-cpu.in --extra otel --find-links $(TORCH_WHEELS) \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--quiet -o requirements.lock

# The image built from the Dockerfile and the whole compose stack (3 api replicas behind HAProxy)
# run on podman, with local stand-ins for the hub images; minutes, root, network for pip/apt.
# See docker/test/stack.sh; it takes /tmp/recserve-heavy.lock for each heavy step (base images, the
# image build, the stack), so it never competes with other heavy jobs on a shared host.
test-deploy: $(DEV_STAMP)
	env PY=$(abspath $(BIN))/python PIP=$(abspath $(BIN))/pip docker/test/stack.sh

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .import_linter_cache
