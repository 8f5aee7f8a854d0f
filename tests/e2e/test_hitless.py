"""A load test: new connections keep flowing through HAProxy while the sync reloads it 10 times.

Bounded in time and count, loopback only. Zero failed connections is the bar.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import HAProxy, free_ports, http_get, minimal_config, nodeport_servers

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LB = '127.0.0.6'
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2'}
RELOADS = 10


class Traffic(threading.Thread):
    """New connection after new connection until told to stop (or 200,000 requests, or 5 minutes)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.failures = port, 0, []
        self.done = threading.Event()

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
        inventory = {'all': {
            'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                     'haproxy_sync_drain_state_file': ''},
            'hosts': {'localhost': {}},
            'children': {'loadbalancers': {'hosts': {'lb': {
                'haproxy_sync_config_path': str(config), 'haproxy_sync_bind_address': LB,
                'haproxy_sync_stats_socket': str(tmp_path / 'admin.sock'),
                'haproxy_sync_reload_command': '/bin/kill -USR2 %d' % proxy.master_pid,
                'haproxy_sync_config_owner': '{{ omit }}', 'haproxy_sync_config_group': '{{ omit }}',
                'haproxy_sync_chroot': '', 'haproxy_sync_user': '', 'haproxy_sync_group': '',
                'haproxy_sync_log_target': '', 'haproxy_sync_hard_stop_after': '10s'}}}}}}
        (tmp_path / 'inventory.json').write_text(json.dumps(inventory))
        env = {k: v for k, v in os.environ.items() if not k.startswith('K8S_AUTH_')}
        env.update({'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1',
                    'K8S_AUTH_HOST': api.url, 'K8S_AUTH_API_KEY': api.token,
                    'K8S_AUTH_SSL_CA_CERT': str(api.ca_path),
                    'PATH': '%s:%s:/usr/sbin:/sbin' % (BIN, os.environ.get('PATH', ''))})

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
            assert traffic.is_alive()
        finally:
            traffic.done.set()
            traffic.join(timeout=30)
        print('%d requests through %d reloads, %d failed' % (traffic.ok, RELOADS, len(traffic.failures)))
        assert traffic.ok > 100
        assert traffic.failures == []
