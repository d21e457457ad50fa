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

$(STAMP): pyproject.toml setup.py $(CONSTRAINTS) Makefile scripts/ensure_debs.sh scripts/cyclonedds_home.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# System libraries: libusb for pyrealsense2, CycloneDDS 0.10.2 for unitree-sdk2's DDS binding.
	sh scripts/ensure_debs.sh libusb-1.0-0 cyclonedds-dev
	# torch first: the CPU wheel on disk. Every later call is pinned by the constraints file.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	# unitree-sdk2 (Go2 low level): its cyclonedds binding builds against Debian's C library; the
	# wheel's own requirements would add opencv-python beside our headless OpenCV, hence --no-deps.
	CYCLONEDDS_HOME=$$(sh scripts/cyclonedds_home.sh $(abspath $(VENV))/cyclonedds-home) \
	    $(BIN)/pip install -q -c $(CONSTRAINTS) "cyclonedds==0.10.2"
	$(BIN)/pip install -q --no-deps "unitree-sdk2==1.0.1"
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
