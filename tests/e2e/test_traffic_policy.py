"""End-to-end: externalTrafficPolicy Local through a real HAProxy.

Only nodes with a ready endpoint enter the backend, and kube-proxy's healthCheckNodePort takes
out a node that lost its endpoint since the last run, before the next run notices.
"""

import collections
import contextlib
import json
import subprocess
import time

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import HAProxy, NodePortServer, free_ports, http_get, identity, minimal_config
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LB = '127.0.0.5'
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2', 'worker-3': '127.0.1.3'}


def test_local_policy_serves_only_nodes_with_a_healthy_endpoint(tmp_path):
    frontend = free_ports(1, 20000, 29999, [LB])[0]
    node_port, health_port = free_ports(2, 30000, 32767, list(NODES.values()))
    # worker-1 and worker-2 host endpoints; worker-2 lost it since, so its health port says 503.
    health = {'worker-1': 200, 'worker-2': 503, 'worker-3': 503}
    with FakeKubeAPI(tmp_path / 'certs') as api, contextlib.ExitStack() as stack:
        for node, address in NODES.items():
            stack.enter_context(NodePortServer(node, address, node_port))
            stack.enter_context(NodePortServer(node, address, health_port, status=health[node]))
        api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in NODES.items()]
            + [objects.service('checkout', 'shop', type='LoadBalancer', external_traffic_policy='Local',
                               health_check_node_port=health_port,
                               ports=[objects.service_port(frontend, name='http', node_port=node_port)]),
               objects.endpointslice('checkout', 'shop', ports=[8080], endpoints=[
                   objects.endpoint(['10.244.1.7'], node_name='worker-1'),
                   objects.endpoint(['10.244.2.7'], node_name='worker-2'),
                   objects.endpoint(['10.244.3.7'], node_name='worker-3', ready=False)])]))
        config = tmp_path / 'haproxy.cfg'
        config.write_text(minimal_config(tmp_path / 'admin.sock'))
        proxy = stack.enter_context(HAProxy(config, tmp_path / 'haproxy.pid'))
        lb = load_balancer(tmp_path, LB, proxy.master_pid, haproxy_sync_check_interval='300ms')
        (tmp_path / 'inventory.json').write_text(json.dumps(inventory({'lb': lb}, tmp_path)))
        env = sync_env(api)
        before = proxy.state()
        result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'),
                                 'playbooks/sync.yml'], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=180, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        proxy.wait_reloaded(before)

        text = config.read_text()
        assert 'worker-3' not in text
        assert 'option httpchk GET /healthz' in text
        assert 'server worker-2 127.0.1.2:%d check port %d' % (node_port, health_port) in text

        served = collections.Counter()
        deadline = time.monotonic() + 15
        # Until HAProxy's checks mark worker-2 down, it may still answer; worker-3 never may.
        while time.monotonic() < deadline:
            status, body = http_get(LB, frontend)
            served[body] += 1
            assert body != identity('worker-3', node_port)
            if served[identity('worker-1', node_port)] >= 20 and sum(served.values()) > 40:
                recent = collections.Counter(http_get(LB, frontend)[1] for dummy in range(20))
                if set(recent) == {identity('worker-1', node_port)}:
                    break
            time.sleep(0.05)
        else:
            pytest.fail('worker-2 was never taken out by its health check: %s' % dict(served))
