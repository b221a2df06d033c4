# Two commands on a fresh machine: `make serve` and `make test`.
#
# The venv's interpreter: the distribution's own /usr/bin/python3 when it is 3.10 or newer and
# can make a venv, else the python3 on PATH; `make PYTHON=python3.12 test` chooses another.
# Debian's (like Ubuntu's and Fedora's) is built with profile-guided and link-time optimisation
# and links libpython statically; pyenv's default build has neither, and on it serve spent
# 1.11-1.20x the CPU per sequential invocation and answered 1.06-1.12x slower, side by side on
# the same machine (`python -m bench.serve_ab --base-python PATH`, docs/architecture.md).
# Everything in the venv runs on it: serve, the runtimes the tests and benchmarks start with
# sys.executable, and the benchmarks' clients.
DISTRIBUTION_PYTHON := $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1 && echo /usr/bin/python3)
PYTHON ?= $(or $(DISTRIBUTION_PYTHON),python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080

.PHONY: serve test lint typecheck unit bench rie broker chromium clean FORCE

# Which interpreter the venv was made with (its real path and version, so that a pyenv shim or
# a distribution upgrade behind the same name counts): a different one rebuilds it.  PYTHON set
# in the environment wins over the default, as make's ?= does.
.cache/.venv-python: FORCE
	@mkdir -p .cache
	@found=$$($(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])' 2>/dev/null) \
		|| { echo "make: cannot run $(PYTHON): install Python 3.10 or newer, or run make PYTHON=/path/to/python3" >&2; exit 1; }; \
	echo "$$found" | cmp -s - $@ || echo "$$found" > $@

# The venv is rebuilt whenever pyproject.toml or the interpreter changes.
$(BIN)/.installed: pyproject.toml .cache/.venv-python
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

serve: $(BIN)/.installed
	@echo "Try it, from another terminal:"
	@echo "  curl -s -XPOST http://127.0.0.1:$(PORT)/2015-03-31/functions/echo/invocations -d '{\"hello\": \"world\"}'"
	@echo "  curl -s -XPOST http://127.0.0.1:$(PORT)/2015-03-31/functions/hello/invocations -d '{\"name\": \"Zoë\"}'"
	@echo "  curl -s 'http://127.0.0.1:8081/any/path?name=url'"
	@echo "  for i in 1 2 3 4; do curl -s -XPOST http://127.0.0.1:$(PORT)/2015-03-31/functions/many/invocations -d '{\"sleep\": 1}' & done; wait"
	@echo "  open http://127.0.0.1:$(PORT)/_lambdakit/ (the live view), or run: $(BIN)/lambdakit top"
	@echo "  $(BIN)/python -c \"import boto3; c = boto3.client('lambda', endpoint_url='http://127.0.0.1:$(PORT)', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x'); print(c.invoke(FunctionName='hello', Payload=b'{\\\"name\\\": \\\"boto3\\\"}')['Payload'].read())\""
	@echo
	$(BIN)/lambdakit serve --config examples/lambdakit.toml --port $(PORT)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# AWS's RIE, from the aws-sam-cli wheel on PyPI, for the side-by-side tests and benchmarks.
rie: .cache/.rie
.cache/.rie: $(BIN)/.installed bench/rie.py
	$(BIN)/python -c "from bench.rie import ensure_rie; print(ensure_rie())"
	touch $@

# Debian's Chromium for the live view's browser tests (Playwright drives it; its own browser
# download is never used).
chromium: .cache/.chromium
.cache/.chromium:
	@mkdir -p .cache
	@command -v chromium >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null 2>&1 || { \
			echo "make: the live view's browser tests need Chromium: install Debian's chromium package (no apt-get here); they are skipped without it" >&2; exit 0; }; \
		echo "installing Debian's chromium for the live view's browser tests"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi \
		|| { echo "make: could not install chromium: the browser tests will be skipped" >&2; exit 0; }; }
	@command -v chromium >/dev/null 2>&1 && touch $@ || true

# RabbitMQ on 127.0.0.1:5672 for the AMQP tests: started if installed but stopped.
broker:
	@bash tests/amqp/ensure_broker.sh

# Two workers: most tests wait on processes and sockets (3 min 47 s on one, 2 min 11 s on two).
unit: $(BIN)/.installed .cache/.rie .cache/.chromium broker
	$(BIN)/pytest -W error -q -n 2

test: lint typecheck unit

# Benchmarks compare cold starts: compile the bytecode first (this environment may forbid
# writing it at import time).
bench: $(BIN)/.installed .cache/.rie
	$(BIN)/python -m compileall -q lambdakit
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .cache/.venv-python
