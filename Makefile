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

# Embedded default: SQLite file chaser.db here, both sample plans and a fictional people
# directory imported, then the real loop (sweep every minute, send every few seconds) writing
# messages into ./outbox/ as .eml and .json files. Ctrl-C stops it.
DEMO = CHASER_CONFIG=samples/chaser.toml
run: $(BIN)/chaser
	$(DEMO) $(BIN)/chaser init
	$(DEMO) $(BIN)/chaser import samples/lambeth-childrens-services-edi-action-plan.docx
	$(DEMO) $(BIN)/chaser import samples/tower-hamlets-commission-action-plan.xlsx
	$(DEMO) $(BIN)/chaser people import samples/people.csv
	$(DEMO) $(BIN)/chaser actions --status unknown | head -n 12
	@echo "Starting chaser run: messages go to $(CURDIR)/outbox/ (see also: chaser outbox, chaser status)."
	@echo "Outside working hours (Mon-Fri from 09:30 London, not bank holidays) nudges wait for the next window."
	$(DEMO) $(BIN)/chaser run

# The whole suite, on SQLite and on the PostgreSQL server at 127.0.0.1:5432, with the Debian
# packages it talks to (an IMAP server, a headless browser) installed first when missing.
test: $(BIN)/chaser
	scripts/debian-packages
	$(BIN)/python -m pytest

bench: $(BIN)/chaser
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) chaser.db chaser.db-wal chaser.db-shm outbox
