# Two commands: `make run` and `make test`. Both create .venv and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Three pytest workers (pytest-xdist), each with its own Apache Kafka, a file at a time: most integration tests wait on
# Kafka and child processes, so the workers overlap the waits. On two cores two workers left a quarter of the CPU idle
# (session 9's clean run: 36.5 CPU minutes in 24.2); three took a clean-clone `.ci/run` from 24m14s to 21m08s
# (session 10, 2,336 passed); session 11's cuts (tests/kafka_class_archive.py among them) took it to 13m00s
# (2,376 passed). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

.PHONY: run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/mash-broker run --dev

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=30

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/mash-broker bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
