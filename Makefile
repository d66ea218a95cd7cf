PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test venv clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) reports .pytest_cache
