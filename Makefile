# The two commands of the README's Quick start: `make run` and `make test`.
# Both create .venv with everything Chaser needs, so a fresh machine only needs python3 (3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test bench clean

$(BIN)/chaser: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/chaser

# Embedded default: SQLite file chaser.db here, both sample plans imported, actions listed.
run: $(BIN)/chaser
	$(BIN)/chaser init
	$(BIN)/chaser import samples/lambeth-childrens-services-edi-action-plan.docx
	$(BIN)/chaser import samples/tower-hamlets-commission-action-plan.xlsx
	$(BIN)/chaser actions

# The whole suite, on SQLite and on the PostgreSQL server at 127.0.0.1:5432.
test: $(BIN)/chaser
	$(BIN)/python -m pytest

bench: $(BIN)/chaser
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) chaser.db chaser.db-wal chaser.db-shm
