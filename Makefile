# promptwatch — see README.md.  `make run` and `make test` are all a newcomer needs.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
PREFIX   ?= /opt/metrotech
DESTDIR  ?=

.PHONY: run venv test test-fast lint bench clean install install-units uninstall-units test-systemd

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## The main job on the embedded sample config (a copy in var/, so edits never touch the repo):
## the admin panel on http://127.0.0.1:8000 and the bot, which waits for Asterisk at ARI_URL and
## hot-reloads every save.  Ctrl-C stops both.
RUN_ENV := PROMPTS_PATH=$(CURDIR)/var/config/prompts.json PROMPTS_STATUS_DIR=$(CURDIR)/var/status \
	STATE_DIR=$(CURDIR)/var SOUNDS_DIR=$(CURDIR)/var/sounds CALLLOG_PATH=$(CURDIR)/var/calls.sqlite3

var/config/prompts.json:
	mkdir -p var
	cp -r config var/config

run: venv var/config/prompts.json
	@$(RUN_ENV) SERVICE_NAME=metrotech-bot $(BIN)/stasis run & bot=$$!; \
	trap 'kill $$bot 2>/dev/null; wait $$bot' EXIT; \
	$(RUN_ENV) $(BIN)/adminapi

test: venv
	$(BIN)/pytest -q -m "not systemd"

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench

## Production install (see README "Running under systemd"): the project in a venv under PREFIX, then the units.
## PIP_FLAGS passes options to pip, e.g. PIP_FLAGS="--no-index --find-links=/srv/wheels" for an offline install.
SYSCONFDIR  ?= /etc
UNITDIR     ?= /etc/systemd/system
SYSUSERSDIR ?= /etc/sysusers.d
TMPFILESDIR ?= /etc/tmpfiles.d
CALL_GRACE_SECONDS ?= 20
START       ?= 0
PIP_FLAGS   ?=
UNITS_ENV    = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' UNITDIR='$(UNITDIR)' \
               SYSUSERSDIR='$(SYSUSERSDIR)' TMPFILESDIR='$(TMPFILESDIR)' CALL_GRACE_SECONDS='$(CALL_GRACE_SECONDS)' \
               START='$(START)'

install:
	umask 022 && $(PYTHON) -m venv $(DESTDIR)$(PREFIX)/venv
	umask 022 && $(DESTDIR)$(PREFIX)/venv/bin/python -m pip install --quiet --no-warn-script-location $(PIP_FLAGS) .
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/README.md

install-units:
	$(UNITS_ENV) sh systemd/units.sh install

uninstall-units:
	$(UNITS_ENV) sh systemd/units.sh uninstall

## The end-to-end test: boots Debian 12 with systemd in a container, installs, checks the services (root only).
test-systemd: venv
	PROMPTWATCH_SYSTEMD_REQUIRED=1 $(BIN)/pytest -q -m systemd tests/systemd

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
