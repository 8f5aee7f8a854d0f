#!/usr/bin/env bash
# The demo: the sync job on the bundled cluster snapshot, against a HAProxy in ./demo.
# Starts stand-ins for the cluster's nodes and a HAProxy on loopback, shows the change in
# check mode, applies it, sends a request through HAProxy, runs again to show nothing changes.
# Everything it starts is stopped at the end (KEEP=1 leaves it running).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
demo="$root/demo"
mkdir -p "$demo"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

stop() {
  local pidfile
  for pidfile in "$demo/nodes.pid" "$demo/haproxy.pid"; do
    # a process that is already gone is fine
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  rm -f "$demo/nodes.pid" "$demo/haproxy.pid"
}
stop
[ "${KEEP:-0}" = 1 ] || trap stop EXIT

say "starting stand-ins for the demo cluster's nodes on 127.0.1.x"
python examples/demo/standin_nodes.py examples/demo/cluster.json --pidfile "$demo/nodes.pid" &
for _ in $(seq 50); do [ -f "$demo/nodes.pid" ] && break; sleep 0.1; done

say "starting HAProxy in $demo with an empty configuration (master-worker mode)"
cat > "$demo/haproxy.cfg" <<CFG
global
    master-worker
    stats socket $demo/admin.sock mode 600 level admin expose-fd listeners
defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
CFG
haproxy -W -D -p "$demo/haproxy.pid" -f "$demo/haproxy.cfg"

say "what would change: ansible-playbook playbooks/sync.yml --check --diff"
ansible-playbook playbooks/sync.yml --check --diff

say "apply it: ansible-playbook playbooks/sync.yml"
ansible-playbook playbooks/sync.yml

say "traffic through HAProxy to shop/storefront (port 8080) and shop/checkout (port 8081)"
for port in 8080 8080 8081 8081; do
  for _ in $(seq 30); do
    if out=$(python -c "import sys,urllib.request;print(urllib.request.urlopen('http://127.0.0.1:'+sys.argv[1]+'/',timeout=2).read().decode().strip())" "$port" 2>/dev/null); then
      echo "127.0.0.1:$port -> $out"; break
    fi
    sleep 0.2
  done
done

say "a second run with no cluster change changes nothing and reloads nothing"
ansible-playbook playbooks/sync.yml

say "done: the configuration is $demo/haproxy.cfg"
