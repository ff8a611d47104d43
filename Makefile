# Two commands: `make demo` runs the main job, `make test` runs every check.
# Both bootstrap what they need (virtual environment, pinned dependencies) and are quick
# on a second run: the install re-runs only when pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lakebed-installed
export DO_NOT_TRACK := 1

.PHONY: setup services demo test lint typecheck unit bench lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

demo: setup
	$(BIN)/lakebed demo

test: lint typecheck unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# What the tests of the real services need besides Python (Redis, PostgreSQL, kcat, Java,
# Maven, and Chromium for the dashboard's browser tests), the Weaviate and SeaweedFS (S3)
# servers, compiled once with Go into ~/.cache/lakebed (about 5 and 7 minutes cold), and
# the cluster profile's Trino server (820 MB) and Spark jars from Maven Central (once).
services:
	bash deploy/packages.sh
	bash deploy/weaviate/weaviate.sh build
	bash deploy/seaweedfs/seaweedfs.sh build
	bash deploy/trino/trino.sh fetch
	bash deploy/spark/spark.sh fetch

unit: setup services
	$(BIN)/pytest

bench: setup services
	$(BIN)/python benchmarks/bench_world.py
	$(BIN)/python benchmarks/bench_lakehouse.py --skip-scale
	$(BIN)/python benchmarks/bench_fraud.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_rag.py
	$(BIN)/python benchmarks/bench_dashboard.py
	$(BIN)/python benchmarks/bench_cluster.py

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check > constraints.txt

clean:
	rm -rf $(VENV) lakebed-data .mypy_cache .ruff_cache .pytest_cache
