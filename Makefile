# Everything starts from a machine with Python 3.11: targets create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install test lint repro lab table bench-install gpu-check gpu-wheels clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.dev: $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

$(VENV)/.pipeline: $(VENV)/.dev
	$(PY) -m pip install -q -e ".[dev,pipeline]"
	touch $@

install: $(VENV)/.dev

test: $(VENV)/.bench  ## lint, then run the test suite (the official peer included: tests/test_peer.py)
	$(VENV)/bin/ruff check yolov7lib tests
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check yolov7lib tests

repro: $(VENV)/.pipeline  ## regenerate results/ with DVC (embedded default profile)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

# JupyterLab refuses root unless told (containers often run as root)
lab: $(VENV)/.dev  ## JupyterLab on notebooks/ (LAB_ARGS: more jupyter lab flags, e.g. --no-browser --port 8890)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

table: $(VENV)/.dev
	$(PY) -m yolov7lib.models --table

$(VENV)/.bench: $(VENV)/.dev
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m pip install -q --no-deps yolov7-package==0.0.13
	touch $@

bench-install: $(VENV)/.bench  ## the official implementation as a benchmark peer (no deps pulled in)

# The GPU path in one command (benchmarks/gpu_check.py): CUDA tests, speed table, training step, loader,
# Table 10's FP16 cells -> results/gpu/. It installs nothing, so it also runs on a GPU machine without a
# network: the project's .venv when there is one, else python3, with the package on PYTHONPATH.
GPU_CHECK_PY := $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:  ## the GPU path on one GPU (<= 8 min on an H100/H200); on a CPU its small version (<= 2 min)
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_CHECK_PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# Wheels for a GPU machine without a network (Python 3.12, x86-64): what gpu-check needs beyond PyTorch,
# torchvision, OpenCV and NumPy, and the official peer. Unpack there with
#   python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
GPU_PY ?= 3.12
gpu-wheels: $(VENV)/bin/python
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl pycocotools simplejpeg
	$(PY) -m pip download -q --no-deps -d .whl yolov7-package==0.0.13
	$(PY) -m pip wheel -q --no-deps -w .whl wget==3.2

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
