# The two commands of the README's quick start: `make demo` and `make test`.
.PHONY: setup demo test lint render golden
VENV := .venv
BIN := $(VENV)/bin

setup:
	@./scripts/setup.sh

demo: setup
	@./scripts/demo.sh

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check opskit tests benchmarks
	$(BIN)/mypy

# regenerate the committed rendered files (alerts/, dashboards/) from opskit.yaml
render: setup
	$(BIN)/opskit alerts render
	$(BIN)/opskit dashboards render

# regenerate every golden file: the rendered files above, and each test's golden file (the tests using the
# `golden` fixture, rewritten with OPSKIT_UPDATE_GOLDEN=1); review `git diff` before committing
golden: render
	OPSKIT_UPDATE_GOLDEN=1 $(BIN)/pytest -q -m golden
