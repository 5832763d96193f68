# promptwatch — see README.md.  `make run` and `make test` are all a newcomer needs.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
PREFIX   ?= /opt/metrotech
DESTDIR  ?=

.PHONY: run venv test test-fast lint bench clean install install-units uninstall-units test-systemd \
	deps-run deps-test deps-systemd

## Debian packages: what `make run` needs (the bot's offline speech), what `make test` adds (the browser,
## Redis), what `make test-systemd` adds (the container).  Installed when missing, as root; otherwise
## the one command to run is printed and nothing starts.
DEB_RUN     := espeak-ng sox libsox-fmt-base
DEB_TEST    := $(DEB_RUN) chromium redis-server redis-sentinel openssl
DEB_SYSTEMD := debootstrap systemd-container

define ensure_packages
@missing=""; for p in $(1); do \
	dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "missing Debian packages:$$missing"; \
		echo "run:  sudo apt-get install -y --no-install-recommends$$missing"; \
		exit 1; \
	fi; \
fi
endef

deps-run:
	$(call ensure_packages,$(DEB_RUN))

deps-test:
	$(call ensure_packages,$(DEB_TEST))

deps-systemd:
	$(call ensure_packages,$(DEB_SYSTEMD))

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory _python-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

_python-venv:
	$(call ensure_packages,python3-venv)

## The main job on the embedded sample config (a copy in var/, so edits never touch the repo):
## the admin panel on http://127.0.0.1:8000 and the bot, which waits for Asterisk at ARI_URL and
## hot-reloads every save.  Both read var/.env (written here), as do `stasis console`,
## `promptwatch status|watch|config` run from the repository root.  Ctrl-C stops both; if either
## exits, the other is stopped and make run fails with the reason.
RUN_DIR := $(CURDIR)/var

var/config/prompts.json:
	mkdir -p var
	cp -r config var/config

var/.env: Makefile
	mkdir -p var
	{ echo "# Written by make run: the stack on the sample config in var/.  Your own .env, if any, wins."; \
	  echo "PROMPTS_PATH=$(RUN_DIR)/config/prompts.json"; \
	  echo "PROMPTS_STATUS_DIR=$(RUN_DIR)/status"; \
	  echo "STATE_DIR=$(RUN_DIR)"; } > $@

run: SHELL := /bin/bash
run: deps-run venv var/config/prompts.json var/.env
	@$(BIN)/stasis run & bot=$$!; \
	$(BIN)/adminapi & panel=$$!; \
	stop() { kill -TERM $$bot $$panel 2>/dev/null; wait $$bot $$panel 2>/dev/null; }; \
	trap 'stop; exit 130' INT; trap 'stop; exit 143' TERM; \
	wait -n -p who $$bot $$panel; rc=$$?; \
	if [ "$$who" = "$$bot" ]; then name=metrotech-bot; other=adminapi; else name=adminapi; other=metrotech-bot; fi; \
	case $$rc in \
		0|130|143) echo "make run: $$name stopped; stopping $$other" >&2 ;; \
		*) echo "make run: $$name exited with status $$rc; stopping $$other" >&2 ;; \
	esac; \
	stop; exit $$(( rc == 0 ? 1 : rc ))

test: deps-test venv
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
test-systemd: deps-systemd venv
	PROMPTWATCH_SYSTEMD_REQUIRED=1 $(BIN)/pytest -q -m systemd tests/systemd

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
