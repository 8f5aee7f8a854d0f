#!/usr/bin/env bash
# Prepares a checkout: Debian's haproxy if missing, a virtualenv with the Python
# packages, and collection/ so `ansible-playbook playbooks/sync.yml` finds portico.k8s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
python=${PYTHON:-python3}

say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

if ! command -v haproxy >/dev/null 2>&1; then
  say "installing Debian's haproxy"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy
fi
# Debian may start the packaged service; the demo and tests run their own instances.
# sed reads all of it: head would close the pipe early, and pipefail would fail on the SIGPIPE
haproxy -v | sed -n 1p

# ansible-rulebook (the event-driven sync) runs on a Java 17+ runtime.
if ! command -v java >/dev/null 2>&1; then
  say "installing a Java runtime for ansible-rulebook"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless
fi

stamp="$venv/.portico-requirements"
want=$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating the virtualenv in .venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
  echo "$want" > "$stamp"
fi

# The collections path of this checkout: collection/ansible_collections/portico/k8s is this tree.
mkdir -p collection/ansible_collections/portico
ln -sfn ../../.. collection/ansible_collections/portico/k8s
say "ready: $("$venv/bin/ansible" --version | sed -n 1p)"
