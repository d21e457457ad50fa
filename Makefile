# Two entry points: `make demo` and `make test`. Each brings .venv up to date by
# itself; the stamp makes a second run install nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rosmind-installed
CONSTRAINTS := requirements/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py $(CONSTRAINTS) Makefile scripts/ensure_debs.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# System libraries wheels load: libusb for pyrealsense2.
	sh scripts/ensure_debs.sh libusb-1.0-0
	# torch first: the CPU wheel on disk. Every later call is pinned by the constraints file.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rosmind demo

test: $(STAMP)
	sh scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check rosmind policies sim hardware ros2_ws tests benchmarks

bench: $(STAMP)
	$(BIN)/rosmind bench transport --json benchmarks/results/transport.json

clean:
	rm -rf $(VENV) build *.egg-info
