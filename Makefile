PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0's CPU build lies on this machine's disk; on a CUDA box: make venv TORCH=<version>
TORCH ?= 2.13.0

.PHONY: test venv clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH)
	$(BIN)/pip install -q -e '.[train,test]'
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) reports .pytest_cache
