# The two commands: `make run` starts the whole stack with demo data, `make test` runs every test.
.PHONY: run test unit e2e bench setup clean

setup:
	@tools/setup.sh

run: setup
	@.venv/bin/python -m tools.stack run

test: setup
	@.venv/bin/python -m pytest -q tests

unit: setup
	@.venv/bin/python -m pytest -q tests/unit

e2e: setup
	@.venv/bin/python -m pytest -q tests/e2e

bench: setup
	@.venv/bin/python -m bench.run $(ARGS)

# Everything the checkout created: var/ here and its database cluster under /var/lib/kemi.
clean:
	@/usr/bin/python3 -m tools.pgdir clean
	rm -rf var
