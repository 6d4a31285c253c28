# The two commands: `make run` starts the whole stack with demo data, `make test` runs every test.
.PHONY: run test unit e2e bench setup clean lint

setup:
	@tools/setup.sh

run: setup
	@.venv/bin/python -m tools.stack run

test: setup lint
	@.venv/bin/python -m pytest -q tests

# flows: type checker (strict on the pure core) and linter, part of `make test`
lint: setup
	@.venv/bin/mypy --strict kemi/core kemi/names.py
	@.venv/bin/ruff check .

unit: setup
	@.venv/bin/python -m pytest -q tests/unit

e2e: setup
	@.venv/bin/python -m pytest -q tests/e2e

bench: setup
	@.venv/bin/python -m bench.run $(ARGS)

clean:
	@.venv/bin/python -m tools.stack stop 2>/dev/null || true
	rm -rf var
