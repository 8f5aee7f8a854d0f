#!/usr/bin/env bash
# Runs the whole test suite with the checkout's virtualenvs (scripts/setup.sh makes them).
# Without arguments: everything but tests/sanity on two workers, each in a network namespace of
# its own (scripts/netns-python), whole files at a time (a file's tests share one lab); then
# tests/sanity on two workers in this shell's network, as ansible-test installs its
# requirements. With arguments: pytest with them, in this shell's network.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
if [ $# -gt 0 ]; then exec python -m pytest "$@"; fi
workers=${PORTICO_TEST_WORKERS:-2}
python -m pytest -p xdist -n "$workers" --tx "$workers*popen//python=$root/scripts/netns-python" \
  --dist loadfile --ignore tests/sanity tests
python -m pytest -p xdist -n "$workers" tests/sanity
