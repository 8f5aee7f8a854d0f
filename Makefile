# The two commands of the README, and the benchmark.
.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

# Sets everything up and runs the sync job on the bundled demo cluster (check mode, then for real).
demo: setup
	@bash scripts/demo.sh

# Runs the whole test suite; ARGS go to pytest, for example make test ARGS='-k runtime -x'.
test: setup
	@bash scripts/test.sh $(ARGS)

# Benchmarks collection, rendering and a no-op sync at 50x200, 500x2000 and 5000x10000, and the
# event-driven convergence with ansible-rulebook (see bench/README.md).
bench: setup
	@.venv/bin/python bench/run.py

clean:
	rm -rf .venv collection demo build .pytest_cache .hypothesis
