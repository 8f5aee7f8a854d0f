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
# Debian may start the packaged service (as it may start ssh and keepalived); the demo and tests
# run their own instances.
# sed reads all of it: head would close the pipe early, and pipefail would fail on the SIGPIPE
haproxy -v | sed -n 1p

# The parallel tests run each worker in a network namespace of its own (scripts/netns-python);
# the lab of load balancers reached over SSH (tests/support/lab.py) runs Debian's sshd, sudo and
# keepalived on hosts made of network and mount namespaces (ip netns, nsenter).
lab_packages=()
for tool in ip:iproute2 unshare:util-linux nsenter:util-linux /usr/sbin/sshd:openssh-server ssh:openssh-client \
    sudo:sudo /usr/sbin/keepalived:keepalived; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then lab_packages+=("${tool#*:}"); fi
done
if [ ${#lab_packages[@]} -gt 0 ]; then
  say "installing ${lab_packages[*]} for the tests' network namespaces and the lab"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${lab_packages[@]}"
fi

# ansible-test sanity runs shellcheck on the scripts only where it is installed: always have it.
if ! command -v shellcheck >/dev/null 2>&1; then
  say "installing shellcheck for ansible-test sanity"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck
fi

# ansible-rulebook (the event-driven sync) runs on a Java 17+ runtime.
if ! command -v java >/dev/null 2>&1; then
  say "installing a Java runtime for ansible-rulebook"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless
fi

stamp="$venv/.portico-requirements"
want=$(cat requirements.txt requirements-test.txt tests/unit/requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating the virtualenv in .venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
  echo "$want" > "$stamp"
fi

# The newest ansible-core needs Python 3.12 or later: a second virtualenv, .venv-newest, where
# tests/sanity runs ansible-test sanity and the end-to-end tests again (.venv has the oldest
# supported release on this machine's python3).
newest_python=""
for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    newest_python=$(command -v "$candidate"); break
  fi
done
newest="$root/.venv-newest"
if [ -z "$newest_python" ]; then
  # the demo runs without it; the tests on the newest ansible-core say what is missing
  say "no Python 3.12 or later found (python3.12, python3.13 or pyenv): .venv-newest is not made"
elif [ ! -x "$newest/bin/python" ] || [ "$(cat "$newest/.portico-requirements" 2>/dev/null)" != "$want" ]; then
  say "creating the virtualenv with the newest ansible-core in .venv-newest ($("$newest_python" --version))"
  "$newest_python" -m venv "$newest"
  "$newest/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$newest/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
  echo "$want" > "$newest/.portico-requirements"
fi

# Galaxy's importer, in a virtualenv of its own (it pins attrs below what the test tools need):
# tests/e2e/test_collection.py imports the built tarball with it, as Galaxy does.
importer="$root/.venv-importer"
want_importer=$(sha256sum requirements-importer.txt | cut -d' ' -f1)
if [ ! -x "$importer/bin/python" ] || [ "$(cat "$importer/.portico-requirements" 2>/dev/null)" != "$want_importer" ]; then
  say "creating the virtualenv of galaxy-importer in .venv-importer"
  "$python" -m venv "$importer"
  "$importer/bin/pip" install -q --disable-pip-version-check -r requirements-importer.txt
  echo "$want_importer" > "$importer/.portico-requirements"
fi

# The collections path of this checkout: collection/ansible_collections/portico/k8s is this tree.
mkdir -p collection/ansible_collections/portico
ln -sfn ../../.. collection/ansible_collections/portico/k8s
say "ready: $("$venv/bin/ansible" --version | sed -n 1p)"
if [ -x "$newest/bin/ansible" ]; then say "newest: $("$newest/bin/ansible" --version | sed -n 1p)"; fi
