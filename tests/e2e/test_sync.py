"""End-to-end: playbooks/sync.yml reads the test API server and drives two real HAProxy load balancers.

The connection comes only from K8S_AUTH_HOST, K8S_AUTH_API_KEY and K8S_AUTH_SSL_CA_CERT, as
AWX's Kubernetes credential injects them. Stand-in NodePorts on 127.0.1.x answer with their
identity, so a response says which node HAProxy chose. The tests run in file order on one lab.
"""

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import (
    free_ports,
    identity,
    nodeport_servers,
    start_load_balancers,
    wait_for_spread,
)
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LOAD_BALANCERS = {'lb-a': '127.0.0.2', 'lb-b': '127.0.0.3'}
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2', 'worker-3': '127.0.1.3'}
RECAP = re.compile(r'^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)


class Lab:
    def __init__(self, root, api, frontend_ports, node_ports):
        self.root, self.api = root, api
        self.web_port, self.shop_port = frontend_ports
        self.web_np, self.shop_np, self.dns_np = node_ports
        self.proxies = {}
        self.held = []

    def config(self, host):
        return self.root / host / 'haproxy.cfg'

    def write_inventory(self):
        hosts = dict((host, load_balancer(self.root / host, address, self.proxies[host].master_pid))
                     for host, address in LOAD_BALANCERS.items())
        (self.root / 'inventory.json').write_text(json.dumps(inventory(hosts, self.root)))

    def env(self, token=None):
        return sync_env(self.api, token, self.root / 'tmp')

    def sync(self, *args, token=None):
        result = subprocess.run(
            [str(BIN / 'ansible-playbook'), '-i', str(self.root / 'inventory.json'), 'playbooks/sync.yml', *args],
            cwd=REPO, env=self.env(token), capture_output=True, text=True, timeout=180, check=False)
        recap = {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(result.stdout)}
        return result, recap

    def files_and_processes(self, records=True):
        """The load balancers' files and HAProxy processes; records=False leaves out .portico-state, where
        a run that changes nothing still records the newer model it saw."""
        files = {p: p.read_bytes() for host in LOAD_BALANCERS for p in (self.root / host).iterdir()
                 if p.is_file() and (records or not p.name.endswith('.portico-state'))}
        return files, {host: proxy.state() for host, proxy in self.proxies.items()}

    def apply(self):
        before = {host: proxy.state() for host, proxy in self.proxies.items()}
        result, recap = self.sync()
        assert result.returncode == 0, result.stdout + result.stderr
        for host, proxy in self.proxies.items():
            proxy.wait_reloaded(before[host])
        return result, recap


def expect(host, port, node_port, nodes):
    wanted = {identity(node, node_port) for node in nodes}
    served = wait_for_spread(LOAD_BALANCERS[host], port, wanted)
    assert set(served) == wanted, '%s:%d served %s, expected %s' % (host, port, dict(served), sorted(wanted))


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('sync')
    frontend_ports = free_ports(2, 20000, 29999, list(LOAD_BALANCERS.values()))
    node_ports = free_ports(3, 30000, 32767, list(NODES.values()))
    with FakeKubeAPI(root / 'certs') as api, nodeport_servers(NODES, node_ports[:2]), \
            contextlib.ExitStack() as stack:
        lab = Lab(root, api, frontend_ports, node_ports)
        api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in NODES.items()]
            + [objects.service('web', 'shop', type='NodePort',
                               ports=[objects.service_port(lab.web_port, name='http', node_port=lab.web_np)]),
               objects.service('dns', 'infra', type='NodePort',
                               ports=[objects.service_port(53, name='dns', protocol='UDP', node_port=lab.dns_np)]),
               objects.service('cache', 'shop', type='ClusterIP', ports=[6379])]))
        lab.proxies.update(start_load_balancers(stack, root, LOAD_BALANCERS))
        lab.write_inventory()
        yield lab


def test_first_sync_serves_every_node_through_every_load_balancer(lab):
    result, recap = lab.apply()
    assert recap['lb-a'][0] >= 1 and recap['lb-b'][0] >= 1
    for host in LOAD_BALANCERS:
        text = lab.config(host).read_text()
        assert '# Source: Kubernetes API %s' % lab.api.url in text
        assert 'frontend shop.web.%d' % lab.web_port in text
        assert 'infra.dns' not in text and 'cache' not in text
        expect(host, lab.web_port, lab.web_np, NODES)


def test_a_second_run_changes_nothing_and_reloads_nothing(lab):
    before = lab.files_and_processes(records=False)
    result, recap = lab.sync()
    assert result.returncode == 0, result.stdout + result.stderr
    assert recap['lb-a'] == (0, 0) and recap['lb-b'] == (0, 0)
    # the reload task ran nowhere
    assert not any('changed:' in part.split('TASK [')[0] for part in result.stdout.split('to the routing model]')[1:])
    assert lab.files_and_processes(records=False) == before


def test_check_mode_shows_a_cluster_change_and_changes_nothing(lab):
    lab.api.add_service(objects.service('shop', 'shop', type='LoadBalancer', ports=[
        objects.service_port(lab.shop_port, name='http', node_port=lab.shop_np)]))
    lab.api.delete_node('worker-2')
    before = lab.files_and_processes()
    result, recap = lab.sync('--check', '--diff')
    assert result.returncode == 0, result.stdout + result.stderr
    assert '+frontend shop.shop.%d' % lab.shop_port in result.stdout
    assert '-    server worker-2 127.0.1.2:%d check' % lab.web_np in result.stdout
    assert result.stdout.count('passes the validate command: Configuration file is valid') == 2
    assert lab.files_and_processes() == before
    expect('lb-a', lab.web_port, lab.web_np, NODES)


def test_the_next_run_applies_the_cluster_change_and_drains_the_node_that_left(lab):
    # idle connections, one per node on each load balancer (roundrobin): worker-2 still has one when it goes
    lab.held = [socket.create_connection((address, lab.web_port), timeout=5)
                for address in LOAD_BALANCERS.values() for dummy in NODES]
    time.sleep(0.3)
    lab.apply()
    for host in LOAD_BALANCERS:
        # worker-2 left: weight 0, so no new connections, while existing ones may finish
        assert '    server worker-2 127.0.1.2:%d check weight 0\n' % lab.web_np in lab.config(host).read_text()
        expect(host, lab.web_port, lab.web_np, ['worker-1', 'worker-3'])
        expect(host, lab.shop_port, lab.shop_np, ['worker-1', 'worker-3'])


def test_a_drained_node_is_removed_by_the_run_after_without_a_reload(lab):
    # its last connections end; only servers change: the runtime API removes worker-2, and HAProxy keeps its workers
    for held in lab.held:
        held.close()
    time.sleep(0.3)
    before = lab.files_and_processes()[1]
    result, recap = lab.sync()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lab.files_and_processes()[1] == before
    for host in LOAD_BALANCERS:
        assert '%s: applied 2 server changes (2 removed) to the running HAProxy through its runtime API' % host \
            in result.stdout
        assert 'worker-2' not in lab.config(host).read_text()
        expect(host, lab.web_port, lab.web_np, ['worker-1', 'worker-3'])
    result, recap = lab.sync()
    assert recap['lb-a'] == (0, 0) and recap['lb-b'] == (0, 0)


def test_a_run_holding_an_older_model_leaves_a_newer_one_in_place(lab):
    # each load balancer records when the model it runs was read from the cluster
    state = Path(str(lab.config('lb-a')) + '.portico-state')
    assert json.loads(state.read_text())['model_read_at'] <= time.time()
    # as if a run that read the cluster later had updated lb-a while this one waited for its lock
    recorded = json.loads(state.read_text())
    state.write_text(json.dumps(dict(recorded, resource_version=str(int(recorded['resource_version']) + 10 ** 6))))
    port, = free_ports(1, 20000, 29999, list(LOAD_BALANCERS.values()))
    node_port = next(p for p in range(30000, 32000) if p not in (lab.web_np, lab.shop_np, lab.dns_np))
    lab.api.create(objects.service('late', 'shop', type='NodePort', ports=[objects.service_port(port, node_port=node_port)]))
    try:
        before = lab.config('lb-a').read_bytes()
        result, recap = lab.sync()
        assert result.returncode == 0, result.stdout + result.stderr
        assert 'lb-a already has a model read from the cluster at' in result.stdout
        assert lab.config('lb-a').read_bytes() == before and recap['lb-a'] == (0, 0)
        assert 'shop.late.%d' % port in lab.config('lb-b').read_text()
        # forced, the run installs its model anyway
        result, recap = lab.sync('-e', 'haproxy_sync_force=true')
        assert result.returncode == 0 and 'shop.late.%d' % port in lab.config('lb-a').read_text()
    finally:
        lab.api.delete('services', 'late', 'shop')
    lab.apply()


def test_an_api_failure_stops_the_run_before_any_load_balancer_is_touched(lab):
    lab.api.delete_service('shop', 'web')
    before = lab.files_and_processes()
    result, recap = lab.sync(token='not-the-token')
    assert result.returncode != 0
    assert '401 Unauthorized' in result.stdout
    assert 'not-the-token' not in result.stdout + result.stderr
    assert 'lb-a' not in recap and 'lb-b' not in recap
    assert lab.files_and_processes() == before
    expect('lb-b', lab.web_port, lab.web_np, ['worker-1', 'worker-3'])
    # back, for the runs after: within the hour the hosts served 3 backends, and 1 would trip the safety valve
    lab.api.add_service(objects.service('web', 'shop', type='NodePort', ports=[
        objects.service_port(lab.web_port, name='http', node_port=lab.web_np)]))


@pytest.mark.parametrize('fault,message', [
    ({'status': 500}, 'answered 500'),
    ({'delay': 4}, 'did not answer within 2 seconds'),
    ({'truncate': 60}, 'cut short'),
    ({'status': 200, 'body': b'{"kind": "ServiceList", "items": [{"metad'}, 'not valid JSON'),
    ({'drop': True}, 'closed the connection'),
])
def test_api_faults_stop_the_run_and_leave_every_config_as_it_was(lab, fault, message):
    lab.api.clear_faults()
    lab.api.fault('/api/v1/services', **fault)
    before = lab.files_and_processes()
    try:
        result, recap = lab.sync('-e', 'haproxy_sync_api_timeout=2')
    finally:
        lab.api.clear_faults()
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
    assert 'lb-a' not in recap and 'lb-b' not in recap
    assert lab.files_and_processes() == before


def test_a_missing_permission_is_named(lab):
    lab.api.forbid(lab.api.token, 'nodes')
    try:
        result, recap = lab.sync()
    finally:
        lab.api.allow(lab.api.token, 'nodes')
    assert result.returncode != 0
    assert 'cannot list resource \\"nodes\\"' in result.stdout or 'cannot list resource "nodes"' in result.stdout
    assert '"list" on nodes' in result.stdout or '\\"list\\" on nodes' in result.stdout


def test_the_token_never_appears_even_at_full_verbosity(lab):
    result, recap = lab.sync('--check', '--diff', '-vvv')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert lab.api.token not in result.stdout + result.stderr
    # wherever the arguments are shown (ansible-core 2.19 prints the invocation at -vvv), masked
    shown = re.findall(r'"api_key": "([^"]*)"', result.stdout)
    assert all(value == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' for value in shown), shown


def test_the_connection_as_awx_and_kubernetes_core_users_give_it(lab, tmp_path):
    import yaml
    base = dict((k, v) for k, v in lab.env().items() if not k.startswith('K8S_AUTH_'))
    # K8S_AUTH_VALIDATE_CERTS, the other name kubernetes.core reads: off, so no CA is needed
    insecure = dict(base, K8S_AUTH_HOST=lab.api.url, K8S_AUTH_API_KEY=lab.api.token, K8S_AUTH_VALIDATE_CERTS='false')
    # the kubeconfig's content as a dict, as a vaulted variable or an AWX credential gives it
    content = yaml.safe_load(lab.api.write_kubeconfig(tmp_path / 'kubeconfig').read_text())
    (tmp_path / 'vars.json').write_text(json.dumps({'haproxy_sync_kubeconfig': content}))
    for env, args in ((insecure, ()), (base, ('-e', '@%s' % (tmp_path / 'vars.json')))):
        result = subprocess.run(
            [str(BIN / 'ansible-playbook'), '-i', str(lab.root / 'inventory.json'), 'playbooks/sync.yml', '--check', *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
        # the cluster was read (a connection refused or a certificate not trusted fails the first play)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        recap = {m['host']: int(m['failed']) for m in RECAP.finditer(result.stdout)}
        assert recap == {'localhost': 0, 'lb-a': 0, 'lb-b': 0}, result.stdout[-3000:]


def test_module_defaults_carry_the_connection_for_the_action_group(lab):
    playbook = lab.root / 'defaults.yml'
    playbook.write_text(json.dumps([{
        'hosts': 'localhost', 'gather_facts': False,
        'module_defaults': {'group/portico.k8s.k8s': {
            'host': lab.api.url, 'api_key': lab.api.token, 'ca_cert': str(lab.api.ca_path)}},
        'tasks': [{'portico.k8s.nodeport_info': {}, 'register': 'routing'},
                  {'ansible.builtin.assert': {'that': ["routing.model.frontends | length > 0"]}}]}]))
    env = {k: v for k, v in lab.env().items() if not k.startswith('K8S_AUTH_')}
    result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(playbook),
                             '-e', 'ansible_python_interpreter=%s' % sys.executable],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lookup_reads_the_same_model(lab):
    result = subprocess.run(
        [str(BIN / 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local', '-m', 'ansible.builtin.debug',
         '-a', "msg={{ lookup('portico.k8s.nodeports').backends | map(attribute='name') | list }}"],
        cwd=REPO, env=lab.env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"shop.shop.%d"' % lab.shop_port in result.stdout


@pytest.mark.parametrize('given,shown', [
    ('haproxy_sync_serial=abc', '"abc"'),
    # a list with key=value arrives as text
    ('haproxy_sync_serial=[1,100%]', '"[1,100%]"'),
    ('{"haproxy_sync_serial": [1, "x"]}', '[1, "x"]'),
    ('{"haproxy_sync_serial": {"a": 1}}', '{"a": 1}'),
])
def test_a_serial_ansible_cannot_read_stops_the_run_with_what_it_takes(tmp_path, given, shown):
    # Ansible's batching would end in a traceback ("invalid literal for int()"); the play keyword is
    # templated before any task, so the check is in it, and also holds with --limit (no collect play)
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory({'lb-x': {}}, tmp_path)))
    for limit in ((), ('--limit', 'lb-x')):
        result = subprocess.run(
            [str(BIN / 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'), 'playbooks/sync.yml', '--check',
             '-e', '{"haproxy_sync_model": {}}', '-e', given, *limit],
            cwd=REPO, env=sync_env(temp=tmp_path), capture_output=True, text=True, timeout=120, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and 'Traceback' not in output and 'probably a bug' not in output, output
        assert ("Error processing keyword 'serial': haproxy_sync_serial is %s, which is not a serial: it takes the "
                'number of load balancers per batch (2), a percentage of them ("30%%"), or a list of those' % shown
                in ' '.join(output.split())), output
        assert 'PLAY [Render, validate, install' not in result.stdout, output


@pytest.mark.parametrize('given', ['haproxy_sync_serial=2', 'haproxy_sync_serial=30%',
                                   '{"haproxy_sync_serial": [1, "100%"]}', '{"haproxy_sync_serial": []}'])
def test_serials_ansible_reads_pass(tmp_path, given):
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory({'lb-x': {}}, tmp_path)))
    result = subprocess.run(
        [str(BIN / 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'), 'playbooks/sync.yml', '--check',
         '-e', '{"haproxy_sync_model": {}}', '-e', given],
        cwd=REPO, env=sync_env(temp=tmp_path), capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    # the run goes on to the load balancers' play (where the empty model given here is refused)
    assert 'haproxy_sync_serial is' not in output and 'Traceback' not in output, output
    assert 'PLAY [Render, validate, install and reload HAProxy on the load balancers]' in result.stdout, output
