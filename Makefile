# The two commands of the README, and the benchmark.
.PHONY: setup demo test clean

setup:
	@bash scripts/setup.sh

# Sets everything up and runs the sync job on the bundled demo cluster (check mode, then for real).
demo: setup
	@bash scripts/demo.sh

# Runs the whole test suite.
test: setup
	@bash scripts/test.sh

clean:
	rm -rf .venv collection demo build .pytest_cache .hypothesis
