"""End-to-end: playbooks/sync.yml with a precomputed model against two real HAProxy load balancers.

Each load balancer is a local host with its own config file, bind address (127.0.0.2, 127.0.0.3),
stats socket and running HAProxy; stand-in NodePorts on 127.0.1.x answer with their identity.
The tests share one lab and run in file order; each first brings the lab to the model it needs.
"""

import concurrent.futures
import contextlib
import grp
import json
import os
import pwd
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.haproxy import (
    check_config,
    free_ports,
    identity,
    nodeport_servers,
    start_load_balancers,
    wait_for_spread,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')
LOAD_BALANCERS = {'lb-a': '127.0.0.2', 'lb-b': '127.0.0.3'}
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2', 'worker-3': '127.0.1.3'}
RECAP = re.compile(
    r'^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)
UDP_EXCLUDED = {'service': 'dns/coredns-ext', 'port': '53/UDP', 'reason': 'UDP ports cannot be balanced by HAProxy'}


def _backend(namespace, service, port, node_port, nodes='all'):
    name = f'{namespace}.{service}.{port}'
    return {
        'name': name, 'service': f'{namespace}/{service}', 'namespace': namespace, 'service_name': service,
        'port_name': '', 'service_port': port, 'node_port': node_port, 'mode': 'tcp', 'balance': 'roundrobin',
        'nodes': nodes,
    }


def _model(nodes, routes, excluded_nodes=()):
    """routes: (backend, frontend port) pairs."""
    backends = sorted((backend for backend, unused in routes), key=lambda backend: backend['name'])
    frontends = sorted(
        ({'name': backend['name'], 'port': port, 'mode': 'tcp', 'backend': backend['name'],
          'service': backend['service'], 'service_port': backend['service_port']} for backend, port in routes),
        key=lambda frontend: frontend['port'],
    )
    return {
        'source': {'kind': 'api', 'server': 'https://127.0.0.1:6443'},
        'nodes': [{'name': name, 'address': NODES[name]} for name in sorted(nodes)],
        'excluded_nodes': [{'name': name, 'reason': 'not Ready (Ready condition is False)'} for name in excluded_nodes],
        'frontends': frontends,
        'backends': backends,
        'excluded_services': [UDP_EXCLUDED],
        'summary': {'nodes': len(nodes), 'excluded_nodes': len(excluded_nodes), 'frontends': len(routes),
                    'backends': len(routes), 'excluded_services': 1},
    }


class Lab:
    """Two load balancers with running HAProxy, stand-in NodePorts, and a way to run the sync playbook."""

    def __init__(self, root, frontend_ports, node_ports):
        self.root = root
        self.web, self.api, self.admin = frontend_ports
        self.web_np, self.api_np, self.admin_np = node_ports
        web = _backend('shop', 'web', 80, self.web_np)
        api = _backend('shop', 'api', 8080, self.api_np, nodes=['worker-1', 'worker-3'])
        admin = _backend('shop', 'admin', 9000, self.admin_np)
        # A: three nodes; the api backend is served by a subset of them.
        self.model_a = _model(NODES, [(web, self.web), (api, self.api)])
        # B: worker-2 is gone and a backend was added.
        self.model_b = _model(['worker-1', 'worker-3'], [(web, self.web), (api, self.api), (admin, self.admin)],
                              excluded_nodes=['worker-2'])
        self.applied = None
        self.proxies = {}
        self.runs = 0

    def config(self, host):
        return self.root / host / 'haproxy.cfg'

    def write_inventory(self):
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        hosts = {}
        for host, address in LOAD_BALANCERS.items():
            hosts[host] = {
                'ansible_connection': 'local',
                'ansible_python_interpreter': sys.executable,
                'haproxy_sync_config_path': str(self.config(host)),
                'haproxy_sync_bind_address': address,
                'haproxy_sync_stats_socket': str(self.root / host / 'admin.sock'),
                'haproxy_sync_reload_command': f'/bin/kill -USR2 {self.proxies[host].master_pid}',
                'haproxy_sync_config_owner': user,
                'haproxy_sync_config_group': group,
                'haproxy_sync_chroot': '',
                'haproxy_sync_user': '',
                'haproxy_sync_group': '',
                'haproxy_sync_hard_stop_after': '5s',
            }
        inventory = self.root / 'inventory.json'
        inventory.write_text(json.dumps({'loadbalancers': {'hosts': hosts}}, indent=2))
        return inventory

    def run(self, model, *args, inventories=(), **extra_vars):
        """Run playbooks/sync.yml; returns (CompletedProcess, {host: {'changed': n, 'failed': n}})."""
        self.runs += 1
        extra = self.root / f'run-{self.runs}.json'
        extra.write_text(json.dumps({'haproxy_sync_model': model,
                                     'haproxy_sync_drain_state_file': str(self.root / 'drain-state.json'),
                                     **extra_vars}))
        env = dict(os.environ)
        env.update({
            'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'),
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json',
            'ANSIBLE_LOCAL_TEMP': str(self.root / 'ansible-tmp'),
            'ANSIBLE_REMOTE_TEMP': str(self.root / 'ansible-tmp'),
            # The default validate command runs haproxy, which a non-root PATH may lack.
            'PATH': f"{env.get('PATH', '')}:/usr/sbin:/sbin",
        })
        result = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), *sum((['-i', str(i)] for i in inventories), []),
             '-i', str(self.root / 'inventory.json'), 'playbooks/sync.yml',
             '-e', f'@{extra}', *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        recap = {m['host']: {key: int(m[key]) for key in ('ok', 'changed', 'failed')}
                 for m in RECAP.finditer(result.stdout) if m['host'] in LOAD_BALANCERS}
        return result, recap

    def states(self):
        return {host: proxy.state() for host, proxy in self.proxies.items()}

    def snapshot(self):
        """Everything a run must not touch when it changes nothing: files in each host's directory and processes."""
        files = {path: path.read_bytes() for host in LOAD_BALANCERS for path in (self.root / host).iterdir()
                 if path.is_file()}
        return files, self.states()

    def apply(self, model):
        """Run the sync for real, wait for both reloads and remember the model."""
        before = self.states()
        result, recap = self.run(model)
        assert result.returncode == 0, result.stdout + result.stderr
        for host, proxy in self.proxies.items():
            assert recap[host]['changed'] >= 1, result.stdout
            proxy.wait_reloaded(before[host])
        self.applied = model
        return result, recap

    def ensure(self, model):
        if self.applied != model:
            self.apply(model)


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('lab')
    addresses = list(LOAD_BALANCERS.values())
    frontend_ports = free_ports(3, 20000, 29999, addresses)
    node_ports = free_ports(3, 30000, 32767, list(NODES.values()))
    lab = Lab(root, frontend_ports, node_ports)
    with nodeport_servers(NODES, node_ports), contextlib.ExitStack() as stack:
        lab.proxies.update(start_load_balancers(stack, root, LOAD_BALANCERS))
        lab.write_inventory()
        yield lab


def _candidates():
    """Temporary candidate files the check-mode validation creates (and must remove)."""
    return set(Path(tempfile.gettempdir()).glob('ansible.*.haproxy.cfg'))


def _expect(host, port, node_port, nodes):
    expected = {identity(node, node_port) for node in nodes}
    bodies = wait_for_spread(LOAD_BALANCERS[host], port, expected)
    assert set(bodies) == expected, f'{host}:{port} served {dict(bodies)}, expected {sorted(expected)}'


def test_sync_routes_traffic_and_a_second_run_changes_nothing(lab):
    result, recap = lab.apply(lab.model_a)
    assert 'TASK [portico.k8s.haproxy_sync : Bring HAProxy on this load balancer to the routing model]' in result.stdout
    for host in LOAD_BALANCERS:
        text = lab.config(host).read_text()
        assert '# Generated by portico.k8s.haproxy_sync. Do not edit' in text
        assert f'    bind {LOAD_BALANCERS[host]}:{lab.web}\n' in text
        assert check_config(lab.config(host)).returncode == 0
        _expect(host, lab.web, lab.web_np, ['worker-1', 'worker-2', 'worker-3'])
        _expect(host, lab.api, lab.api_np, ['worker-1', 'worker-3'])

    files, states = lab.snapshot()
    result, recap = lab.run(lab.model_a)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {host: counts['changed'] for host, counts in recap.items()} == {'lb-a': 0, 'lb-b': 0}
    # the reload task ran nowhere
    assert not any('changed:' in part.split('TASK [')[0] for part in result.stdout.split('to the routing model]')[1:])
    assert lab.snapshot() == (files, states)


def test_check_mode_shows_the_diff_validates_and_changes_nothing(lab):
    lab.ensure(lab.model_a)
    before, candidates = lab.snapshot(), _candidates()
    result, recap = lab.run(lab.model_b, '--check', '--diff')
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(counts['changed'] >= 1 for counts in recap.values()), result.stdout
    assert '+backend shop.admin.9000\n' in result.stdout
    assert f'-    server worker-2 127.0.1.2:{lab.web_np} check\n' in result.stdout
    assert result.stdout.count('passes the validate command: Configuration file is valid') == 2
    assert lab.snapshot() == before
    assert _candidates() == candidates
    _expect('lb-a', lab.web, lab.web_np, ['worker-1', 'worker-2', 'worker-3'])


def test_check_mode_reports_a_configuration_haproxy_would_refuse(lab):
    lab.ensure(lab.model_a)
    bad_base = lab.root / 'bad-base.cfg.j2'
    bad_base.write_text('global\n    no-such-keyword-here\n')
    before = lab.snapshot()
    result, recap = lab.run(lab.model_b, '--check', '--diff', haproxy_sync_base_template=str(bad_base))
    assert result.returncode != 0
    assert 'would be refused' in result.stdout and 'no-such-keyword-here' in result.stdout
    assert lab.snapshot() == before


def test_a_model_change_is_applied_and_traffic_follows(lab):
    lab.ensure(lab.model_a)
    result, recap = lab.apply(lab.model_b)
    for host in LOAD_BALANCERS:
        text = lab.config(host).read_text()
        assert 'worker-2' not in text
        _expect(host, lab.web, lab.web_np, ['worker-1', 'worker-3'])
        _expect(host, lab.admin, lab.admin_np, ['worker-1', 'worker-3'])
        _expect(host, lab.api, lab.api_np, ['worker-1', 'worker-3'])


def test_an_invalid_base_template_is_refused_and_haproxy_keeps_serving(lab):
    lab.ensure(lab.model_b)
    bad_base = lab.root / 'bad-base.cfg.j2'
    bad_base.write_text('global\n    no-such-keyword-here\n')
    states = lab.states()
    # Only the configs: backup copies the current file before validation refuses the new one.
    configs = {host: lab.config(host).read_bytes() for host in LOAD_BALANCERS}
    result, recap = lab.run(lab.model_a, haproxy_sync_base_template=str(bad_base))
    assert result.returncode != 0
    assert 'failed to validate' in result.stdout and 'no-such-keyword-here' in result.stdout
    assert recap['lb-a']['failed'] == 1
    # the canary failed: the rollout stops before the second load balancer (asked only which
    # floating addresses it holds, in the play before)
    assert (recap['lb-b']['changed'], recap['lb-b']['failed']) == (0, 0)
    assert {host: lab.config(host).read_bytes() for host in LOAD_BALANCERS} == configs
    assert lab.states() == states
    for host in LOAD_BALANCERS:
        _expect(host, lab.web, lab.web_np, ['worker-1', 'worker-3'])
        _expect(host, lab.admin, lab.admin_np, ['worker-1', 'worker-3'])


def _configs(lab):
    return {host: lab.config(host).read_bytes() for host in LOAD_BALANCERS}


def test_the_safety_valve_refuses_to_remove_most_backends_unless_forced(lab):
    lab.ensure(lab.model_b)
    configs, states = _configs(lab), lab.states()
    web_only = dict(lab.model_b, backends=[b for b in lab.model_b['backends'] if b['service'] == 'shop/web'],
                    frontends=[f for f in lab.model_b['frontends'] if f['service'] == 'shop/web'])
    result, recap = lab.run(web_only)
    assert result.returncode != 0
    assert 'Refusing to remove 2 of the 3 backends' in result.stdout
    assert 'shop.admin.9000' in result.stdout and 'haproxy_sync_force=true' in result.stdout
    assert _configs(lab) == configs and lab.states() == states
    before = lab.states()
    result, recap = lab.run(web_only, haproxy_sync_force=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for host, proxy in lab.proxies.items():
        proxy.wait_reloaded(before[host])
    assert 'shop.admin.9000' not in lab.config('lb-a').read_text()
    lab.applied = web_only


def test_a_failed_reload_puts_the_previous_configuration_back(lab):
    lab.ensure(lab.model_b)
    configs, states = _configs(lab), lab.states()
    result, recap = lab.run(lab.model_a, haproxy_sync_reload_command='/bin/false')
    assert result.returncode != 0
    assert 'Reloading HAProxy failed' in result.stdout, result.stdout[-3000:]
    # /bin/false fails the second reload too, and the message says so
    assert 'The previous configuration was put back, but reloading it failed too' in result.stdout
    assert recap['lb-a']['failed'] == 1 and (recap['lb-b']['changed'], recap['lb-b']['failed']) == (0, 0)
    assert _configs(lab) == configs
    assert lab.states() == states
    _expect('lb-a', lab.admin, lab.admin_np, ['worker-1', 'worker-3'])


def test_a_second_run_on_a_locked_host_fails_cleanly(lab):
    lab.ensure(lab.model_b)
    lock = Path(str(lab.config('lb-a')) + '.portico-lock')
    lock.mkdir()
    try:
        configs = _configs(lab)
        result, recap = lab.run(lab.model_a, haproxy_sync_lock_timeout=2)
        assert result.returncode != 0
        assert 'Another run holds' in result.stdout and 'nothing was changed here' in result.stdout
        assert _configs(lab) == configs
    finally:
        lock.rmdir()
    lab.apply(lab.model_a)
    assert not lock.exists()


def test_an_unreachable_load_balancer_fails_visibly_and_the_others_are_synced(lab):
    lab.ensure(lab.model_b)
    down = lab.root / 'down.json'
    # first in the rollout, on a port where nothing listens
    down.write_text(json.dumps({'loadbalancers': {'hosts': {'lb-down': {
        'ansible_host': '127.0.0.1', 'ansible_port': 1, 'ansible_connection': 'ssh'}}}}))
    before = lab.states()
    result, recap = lab.run(lab.model_a, inventories=[down])
    assert result.returncode != 0
    assert 'lb-down' in result.stdout and 'UNREACHABLE' in result.stdout
    for host, proxy in lab.proxies.items():
        proxy.wait_reloaded(before[host])
        assert recap[host]['changed'] >= 1 and recap[host]['failed'] == 0
    lab.applied = lab.model_a
    _expect('lb-b', lab.api, lab.api_np, ['worker-1', 'worker-3'])


def test_two_runs_at_once_on_the_same_hosts_take_turns(lab):
    lab.ensure(lab.model_a)
    before = lab.states()
    # Two ansible-playbook processes at once: the second waits for each host's lock.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(lab.run, lab.model_b)
        second = pool.submit(lab.run, lab.model_b)
        results = [first.result(), second.result()]
    for result, recap in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for host, proxy in lab.proxies.items():
        proxy.wait_reloaded(before[host])
        assert check_config(lab.config(host)).returncode == 0
        assert not Path(str(lab.config(host)) + '.portico-lock').exists()
    # exactly one of the two wrote each file; the other found it already in place
    assert sorted(recap['lb-a']['changed'] for dummy, recap in results)[0] == 0
    lab.applied = lab.model_b


def test_the_file_has_the_owner_and_mode_asked_for(lab):
    lab.ensure(lab.model_b)
    result, recap = lab.run(lab.model_a, haproxy_sync_config_mode='0640')
    assert result.returncode == 0, result.stdout[-3000:]
    lab.applied = lab.model_a
    for host in LOAD_BALANCERS:
        info = lab.config(host).stat()
        assert oct(info.st_mode & 0o777) == '0o640'
        assert pwd.getpwuid(info.st_uid).pw_name == pwd.getpwuid(os.getuid()).pw_name
        # no temporary or half-written file left beside it
        assert not [p for p in lab.config(host).parent.iterdir() if p.name.startswith('.ansible_tmp') or
                    p.name.startswith('tmp')]
