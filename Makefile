# Two commands: `make run` (set up what is missing, then start the dashboard) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
APT_PACKAGES := libfluidsynth3
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: setup system run test demo bench clean-data

setup: system $(STAMP)

# Debian packages: installed with apt-get when missing (as root); otherwise say what to install and stop.
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing system packages: $$missing. Install them (Debian/Ubuntu: sudo apt-get install $$missing;"; \
	    echo "elsewhere the FluidSynth 2 shared library), then re-run make."; exit 1; \
	  fi; \
	fi

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $(STAMP)

run: setup
	$(PY) -m streamlit run dashboard/app.py --server.address $(HOST) --server.port $(PORT) --server.headless true \
	  --browser.gatherUsageStats false

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m pipeline generate --name demo --limit 50
	$(PY) -m pipeline stats --name demo

bench: setup
	$(PY) benchmarks/generate.py
