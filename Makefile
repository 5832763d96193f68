# promptwatch — see README.md.  `make run` and `make test` are all a newcomer needs.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
PREFIX   ?= /opt/metrotech
DESTDIR  ?=
PROMPTS  ?= config/prompts.json

.PHONY: run venv test test-fast lint bench clean install install-units uninstall-units test-systemd

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## The main job on the embedded sample config: watch config/prompts.json and print every reload.
run: venv
	$(BIN)/promptwatch watch $(PROMPTS)

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
