#!/usr/bin/env bash
# Runs ansible-test (sanity by default) on a copy of the tracked files placed under
# ansible_collections/portico/k8s, the only path ansible-test accepts.
# Usage: [ANSIBLE_CORE=2.19 | VENV=.venv-newest] scripts/ansible-test.sh [sanity|units ...] [options]
# ANSIBLE_CORE runs the ansible-test of that ansible-core release, from a virtualenv of its own;
# VENV the one of an existing virtualenv (the setup's .venv-newest has the newest release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/${VENV:-.venv}"
if [ $# -eq 0 ]; then set -- sanity; fi
# a tree per command and release: sanity and units may run side by side
work="$root/build/ansible-test-$1${ANSIBLE_CORE:+-$ANSIBLE_CORE}${VENV:+-$(basename "$venv")}"
if [ -n "${ANSIBLE_CORE:-}" ]; then
  venv="$root/build/ansible-core-$ANSIBLE_CORE"
  if [ ! -x "$venv/bin/ansible-test" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE.*"
  fi
fi
tree="$work/ansible_collections/portico/k8s"
rm -rf "$work/ansible_collections"
mkdir -p "$tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tree")
# ansible-test reads the file list from git; collection/ (a symlink) is never part of it.
(cd "$tree" && git init -q && git add -A)

# A HOME of its own keeps ansible-test's virtualenvs between runs and out of the user's home.
export HOME="$work/home"
# The pip version ansible-test bootstraps is pinned in its source.
pip_version=$("$venv/bin/python" - <<'PY'
import re, ansible_test._internal.python_requirements as r
print(re.search(r"pip='([0-9.]+)'", open(r.__file__).read()).group(1))
PY
)
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cp "$root/tests/sanity/get_pip.py" "$cache/get_pip_${pip_version//./_}.py"

cd "$tree"
exec "$venv/bin/ansible-test" "$@" --python "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
