# Everything starts from a machine with Python 3.11: targets create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install test lint repro lab table bench-install gpu-check gpu-wheels gpu-stack clean

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

# The GPU machine's software without its GPU: its Python 3.12, PyTorch 2.11 and NumPy 2.5 (as sessions
# listed them there in 2026-11; the same PyPI builds, CUDA libraries included: 5.3 GB) in .venv-gpu,
# the wheels of gpu-wheels unpacked as there, and gpu-check's small CPU run under them, so that a
# version mismatch shows here and not in a GPU machine's scarce minutes. GPU_STACK_PY: a Python 3.12.
GPU_STACK_PY ?= python3.12
GPU_STACK := torch==2.11.0 torchvision==0.26.0 numpy==2.5.2 onnx==1.23.1 onnxruntime==1.30.0 onnxscript==0.7.2 \
	opencv-python-headless pillow pyyaml tqdm matplotlib pandas scipy pytest requests
.venv-gpu/bin/python:
	$(GPU_STACK_PY) -m venv .venv-gpu
	.venv-gpu/bin/python -m pip install -q $(GPU_STACK)

gpu-stack: .venv-gpu/bin/python gpu-wheels  ## gpu-check's CPU run under the GPU machine's Python and PyTorch
	rm -rf .venv-gpu/site
	.venv-gpu/bin/python -m pip install -q --no-index --no-deps --target .venv-gpu/site .whl/*.whl
	PYTHONPATH="$(CURDIR)/.venv-gpu/site" $(MAKE) gpu-check GPU_CHECK_PY=.venv-gpu/bin/python \
		GPU_CHECK_ARGS="--out runs/gpu_stack $(GPU_CHECK_ARGS)"

clean:
	rm -rf $(VENV) .venv-gpu .pytest_cache .ruff_cache
