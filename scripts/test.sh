#!/usr/bin/env bash
# Runs the whole test suite with the checkout's virtualenv (scripts/setup.sh makes it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
exec python -m pytest "$@"
