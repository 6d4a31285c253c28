# The two commands: `make run` starts the whole stack with demo data, `make test` runs every test.
.PHONY: run test unit e2e bench setup clean lint

setup:
	@tools/setup.sh

run: setup
	@.venv/bin/python -m tools.stack run

# End-to-end tests each start their own stack on free ports, so they run side by side.
TEST_WORKERS ?= 3

# Tests that measure recovery, run alone after the rest, not beside three other stacks: fault
# injection (worker kill, rtpengine hang, database black hole). (The baresip tests reserve
# baresip's SIP/TLS port now, and the statistics test counts only its own calls: both run in
# the parallel part again.)
SERIAL_TESTS = tests/e2e/test_faults.py

test: setup lint
	@.venv/bin/python -m pytest -q -n $(TEST_WORKERS) $(addprefix --ignore=,$(SERIAL_TESTS)) tests
	@.venv/bin/python -m pytest -q $(SERIAL_TESTS)

# The rtpengine-hang fault test alone (README "Fault behaviour"; part of `make test` again since
# its "stall" was found to be a flood ban of the load generator's address and fixed).
HUNG_RTPENGINE = tests/e2e/test_faults.py::test_hung_rtpengine_costs_each_call_a_bounded_delay
test-hung-rtpengine: setup
	@.venv/bin/python -m pytest -q -s $(HUNG_RTPENGINE)

# flows: type checker (strict on the pure core) and linter, part of `make test`
lint: setup
	@.venv/bin/mypy --strict kemi/core kemi/names.py
	@.venv/bin/ruff check .

unit: setup
	@.venv/bin/python -m pytest -q tests/unit

e2e: setup
	@.venv/bin/python -m pytest -q -n $(TEST_WORKERS) tests/e2e

bench: setup
	@.venv/bin/python -m bench.run $(ARGS)

# issue 11: subscribers at scale, OPTIONS during changes, memory, REGISTER/s, restart, and the
# native-equivalent baseline (bench/scale.py); ARGS='--million' adds 1,000,000 subscribers
bench-scale: setup
	@.venv/bin/python -m bench.scale $(ARGS)

# Everything the checkout created: var/ here and its database cluster under /var/lib/kemi.
clean:
	@/usr/bin/python3 -m tools.pgdir clean
	rm -rf var
