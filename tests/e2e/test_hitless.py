"""A load test: new connections keep flowing through HAProxy while the sync reloads it 10 times.

Bounded in time and count, loopback only. Zero failed connections is the bar.
"""

import contextlib
import json
import subprocess
import threading
import time

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import HAProxy, free_ports, http_get, minimal_config, nodeport_servers
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LB = '127.0.0.6'
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2'}
RELOADS = 10


class Traffic(threading.Thread):
    """New connection after new connection until told to stop (or 200,000 requests, or 5 minutes)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.failures = port, 0, []
        self.done = threading.Event()
        self.stopped_by = None

    def run(self):
        deadline = time.monotonic() + 300
        while not self.done.is_set() and self.ok + len(self.failures) < 200000 and time.monotonic() < deadline:
            try:
                status, dummy = http_get(LB, self.port, timeout=5)
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append('HTTP %d' % status)
            except OSError as exc:
                self.failures.append(repr(exc))
        # which limit ended the load: only the test's own stop is a pass
        self.stopped_by = ('the test' if self.done.is_set() else '200,000 requests'
                           if self.ok + len(self.failures) >= 200000 else 'its 300 s budget')


def test_ten_reloads_under_load_drop_no_connection(tmp_path):
    web, extra = free_ports(2, 20000, 29999, [LB])
    web_np, extra_np = free_ports(2, 30000, 32767, list(NODES.values()))
    extra_service = objects.service('extra', 'shop', type='NodePort',
                                    ports=[objects.service_port(extra, name='http', node_port=extra_np)])
    with FakeKubeAPI(tmp_path / 'certs') as api, nodeport_servers(NODES, [web_np, extra_np]), \
            contextlib.ExitStack() as stack:
        api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in NODES.items()]
            + [objects.service('web', 'shop', type='NodePort',
                               ports=[objects.service_port(web, name='http', node_port=web_np)])]))
        config = tmp_path / 'haproxy.cfg'
        config.write_text(minimal_config(tmp_path / 'admin.sock'))
        proxy = stack.enter_context(HAProxy(config, tmp_path / 'haproxy.pid'))
        lb = load_balancer(tmp_path, LB, proxy.master_pid, haproxy_sync_hard_stop_after='10s')
        (tmp_path / 'inventory.json').write_text(json.dumps(inventory({'lb': lb}, tmp_path,
                                                                      haproxy_sync_drain_state_file='')))
        env = sync_env(api)

        def sync():
            before = proxy.state()
            result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'),
                                     'playbooks/sync.yml'], cwd=REPO, env=env, capture_output=True, text=True,
                                    timeout=180, check=False)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr
            proxy.wait_reloaded(before)

        sync()
        traffic = Traffic(web)
        traffic.start()
        try:
            for round_number in range(RELOADS):
                # add, then remove, a service: each run changes the file and reloads
                if round_number % 2 == 0:
                    api.add_service(extra_service)
                else:
                    api.delete_service('shop', 'extra')
                sync()
            # the load lasted through the last reload
            assert traffic.is_alive(), 'the load stopped before the last reload: %s ended it' % traffic.stopped_by
        finally:
            traffic.done.set()
            traffic.join(timeout=30)
        print('%d requests through %d reloads, %d failed' % (traffic.ok, RELOADS, len(traffic.failures)))
        assert traffic.ok > 100
        assert traffic.failures == []
