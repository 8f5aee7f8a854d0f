"""End-to-end: what playbooks/sync.yml does on the controller, around the load balancers.

Two real HAProxy load balancers on loopback and clusters read from snapshot files (each its own
cluster, by its path). The tests cover the controller's side of a run: the drain state file and
its directory, and input that would otherwise change nothing visible (or the wrong thing).
"""

import contextlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.fakeapi import objects
from tests.support.haproxy import HAPROXY, HAProxy, free_ports, minimal_config, start_load_balancers
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LOAD_BALANCERS = {'lb-a': '127.0.0.2', 'lb-b': '127.0.0.3'}
RECAP = re.compile(r'^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)


class Lab:
    def __init__(self, root, port, node_port):
        self.root, self.port, self.node_port = root, port, node_port
        self.proxies = {}
        self.runs = 0

    def config(self, host):
        return self.root / host / 'haproxy.cfg'

    def configs(self):
        return {host: self.config(host).read_bytes() for host in LOAD_BALANCERS}

    def snapshot(self, name, nodes):
        """A cluster snapshot file with these {node: address} and one NodePort service."""
        path = self.root / ('%s.json' % name)
        path.write_text(json.dumps(objects.cluster_list(
            [objects.node(node, internal_ips=address) for node, address in sorted(nodes.items())]
            + [objects.service('web', 'shop', type='NodePort',
                               ports=[objects.service_port(self.port, name='http', node_port=self.node_port)])])))
        return path

    def write_inventory(self, path=None, **all_vars):
        hosts = dict((host, load_balancer(self.root / host, address, self.proxies[host].master_pid))
                     for host, address in LOAD_BALANCERS.items())
        path = path or self.root / 'inventory.json'
        path.write_text(json.dumps(inventory(hosts, self.root, **all_vars)))
        return path

    def sync(self, *args, inventory_path=None, playbook='playbooks/sync.yml', env=None, **extra_vars):
        self.runs += 1
        extra = self.root / ('run-%d.json' % self.runs)
        extra.write_text(json.dumps(extra_vars))
        result = subprocess.run(
            [str(BIN / 'ansible-playbook'), '-i', str(inventory_path or self.root / 'inventory.json'),
             str(playbook), '-e', '@%s' % extra, *args],
            cwd=REPO, env=dict(sync_env(temp=self.root / 'tmp'), **(env or {})),
            capture_output=True, text=True, timeout=180, check=False)
        recap = {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(result.stdout)}
        return result, recap


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('controller')
    (root / 'tmp').mkdir()
    port, = free_ports(1, 20000, 29999, list(LOAD_BALANCERS.values()))
    node_port, = free_ports(1, 30000, 32767, ['127.0.1.1'])
    with contextlib.ExitStack() as stack:
        lab = Lab(root, port, node_port)
        lab.proxies.update(start_load_balancers(stack, root, LOAD_BALANCERS))
        lab.write_inventory()
        yield lab


def test_the_drain_state_goes_into_a_shared_directory_without_changing_its_mode(lab):
    snapshot = lab.snapshot('cluster-a', {'a-1': '127.0.1.1', 'a-2': '127.0.1.2'})
    shared = lab.root / 'shared'
    shared.mkdir()
    shared.chmod(0o755)
    state = shared / 'portico.json'
    result, recap = lab.sync(haproxy_sync_snapshot=str(snapshot), haproxy_sync_drain_state_file=str(state))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert [n['name'] for n in json.loads(state.read_text())['nodes']] == ['a-1', 'a-2']
    # a directory that is missing is made, for this user only (its parents too)
    fresh = lab.root / 'fresh' / 'portico' / 'drain.json'
    result, recap = lab.sync(haproxy_sync_snapshot=str(snapshot), haproxy_sync_drain_state_file=str(fresh))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert fresh.is_file()
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((lab.root / 'fresh').stat().st_mode) == 0o700


def test_the_drain_state_of_one_cluster_never_reaches_another(lab):
    state = lab.root / 'drain-state.json'
    cluster_a = lab.snapshot('cluster-a', {'a-1': '127.0.1.1', 'a-2': '127.0.1.2'})
    cluster_b = lab.snapshot('cluster-b', {'b-1': '127.0.1.3'})
    result, recap = lab.sync(haproxy_sync_snapshot=str(cluster_a))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert json.loads(state.read_text())['source']['snapshot'] == str(cluster_a)
    # the same state file, another cluster: its load balancers get none of A's nodes, not even at weight 0
    result, recap = lab.sync(haproxy_sync_snapshot=str(cluster_b))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for host in LOAD_BALANCERS:
        text = lab.config(host).read_text()
        assert 'server b-1 127.0.1.3:%d check\n' % lab.node_port in text
        assert 'a-1' not in text and 'a-2' not in text
    output = ' '.join(result.stdout.split() + result.stderr.split())
    assert ('[WARNING]: the drain state file %s is about the cluster snapshot %s, not the cluster snapshot %s'
            % (state, cluster_a, cluster_b)) in output, output[-3000:]
    assert json.loads(state.read_text())['source']['snapshot'] == str(cluster_b)


@pytest.mark.parametrize('text', ['{"nodes": [{"name": "b-1", "addr', '[]'])
def test_a_corrupt_drain_state_file_stops_the_run_before_any_load_balancer_naming_it(lab, text):
    state = lab.root / 'drain-state.json'
    state.write_text(text)
    before = lab.configs()
    result, recap = lab.sync(haproxy_sync_snapshot=str(lab.root / 'cluster-b.json'))
    assert result.returncode != 0
    output = ' '.join(result.stdout.split())
    assert 'the drain state file %s is not' % state in output, result.stdout[-3000:]
    assert 'remove the file' in output and 'nothing was changed' in output
    assert 'lb-a' not in recap and 'lb-b' not in recap
    assert lab.configs() == before and state.read_text() == text
    state.unlink()


def test_an_inventory_without_the_group_loadbalancers_stops_and_records_nothing(lab):
    cluster_a = lab.snapshot('cluster-a', {'a-1': '127.0.1.1', 'a-2': '127.0.1.2'})
    state = lab.root / 'no-group' / 'drain-state.json'
    other = lab.root / 'other-group.json'
    other.write_text(json.dumps({'all': {'vars': {'ansible_connection': 'local'},
                                         'children': {'proxies': {'hosts': {'lb-a': {}}}}}}))
    for args in ((), ('-e', 'haproxy_sync_model={"nodes": [], "frontends": [], "backends": []}')):
        result, recap = lab.sync(*args, inventory_path=other, haproxy_sync_snapshot=str(cluster_a),
                                 haproxy_sync_drain_state_file=str(state))
        assert result.returncode != 0
        output = ' '.join(result.stdout.split())
        assert 'the inventory has no group loadbalancers (its groups: proxies): this run would update no load ' \
               'balancer' in output, result.stdout[-3000:]
        assert 'Put the HAProxy hosts in a group named loadbalancers' in output
        assert not state.parent.exists()


def test_collect_options_set_for_the_load_balancers_are_used_when_they_agree(lab):
    cluster = lab.snapshot('cluster-group', {'a-1': '127.0.1.1'})
    path = lab.root / 'group-vars.json'
    document = json.loads(lab.write_inventory(path).read_text())
    # the natural place: the load balancers' group
    document['all']['children']['loadbalancers']['vars'] = {'haproxy_sync_frontend_port': 'node_port',
                                                            'haproxy_sync_snapshot': str(cluster)}
    path.write_text(json.dumps(document))
    result, recap = lab.sync(inventory_path=path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    output = ' '.join(result.stdout.split())
    assert '2 load balancers (lb-a, lb-b); taken from their variables: haproxy_sync_frontend_port, ' \
           'haproxy_sync_snapshot' in output, output[-3000:]
    for host, address in LOAD_BALANCERS.items():
        text = lab.config(host).read_text()
        assert '# Source: cluster snapshot %s' % cluster in text
        assert '    bind %s:%d\n' % (address, lab.node_port) in text
    # the controller's steps after the load balancers see them too: the state is of that snapshot
    assert json.loads((lab.root / 'drain-state.json').read_text())['source']['snapshot'] == str(cluster)
    # hosts that disagree stop the run before anything is read, naming the variable and the hosts
    document['all']['children']['loadbalancers']['hosts']['lb-b']['haproxy_sync_frontend_port'] = 'service_port'
    path.write_text(json.dumps(document))
    before = lab.configs()
    result, recap = lab.sync(inventory_path=path)
    assert result.returncode != 0
    output = ' '.join(result.stdout.split()).replace('\\"', '"')
    assert 'haproxy_sync_frontend_port differs between the load balancers (lb-a: "node_port"; lb-b: ' \
           '"service_port")' in output, output[-3000:]
    assert 'lb-a' not in recap and 'lb-b' not in recap and lab.configs() == before
    # and so does a controller that sets another value than the load balancers' group
    del document['all']['children']['loadbalancers']['hosts']['lb-b']['haproxy_sync_frontend_port']
    document['all']['hosts']['localhost']['haproxy_sync_frontend_port'] = 'service_port'
    path.write_text(json.dumps(document))
    result, recap = lab.sync(inventory_path=path)
    assert result.returncode != 0
    output = ' '.join(result.stdout.split()).replace('\\"', '"')
    assert 'haproxy_sync_frontend_port is "node_port" on the load balancers but "service_port" on localhost, ' \
           'where the model is collected' in output, output[-3000:]
    assert lab.configs() == before


def test_a_misspelled_variable_is_named_in_a_warning(lab):
    cluster = lab.snapshot('cluster-a', {'a-1': '127.0.1.1', 'a-2': '127.0.1.2'})
    path = lab.root / 'misspelled.json'
    document = json.loads(lab.write_inventory(path, haproxy_sync_namespace=['shop']).read_text())
    document['all']['children']['loadbalancers']['hosts']['lb-b']['haproxy_sync_drain_secs'] = 60
    path.write_text(json.dumps(document))
    result, recap = lab.sync('--check', inventory_path=path, haproxy_sync_snapshot=str(cluster),
                             haproxy_sync_serail=1)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    output = ' '.join(result.stdout.split() + result.stderr.split())
    for name, hosts, close in (('haproxy_sync_drain_secs', 'lb-b', 'haproxy_sync_drain_seconds'),
                               ('haproxy_sync_namespace', 'lb-a, lb-b, localhost', 'haproxy_sync_namespaces'),
                               ('haproxy_sync_serail', 'lb-a, lb-b, localhost', 'haproxy_sync_serial')):
        assert ('[WARNING]: %s (set for %s) is not a variable of the portico.k8s.haproxy_sync role, so it is '
                'ignored (did you mean %s?)' % (name, hosts, close)) in output, output[-3000:]


@pytest.mark.parametrize('as_dict', [None, True])
def test_the_sync_keeps_the_model_as_text_and_the_dict_only_when_asked(lab, as_dict):
    cluster = lab.snapshot('cluster-a', {'a-1': '127.0.1.1', 'a-2': '127.0.1.2'})
    playbook = lab.root / 'sync-then-look.yml'
    playbook.write_text(json.dumps([
        {'import_playbook': str(REPO / 'playbooks' / 'sync.yml')},
        {'hosts': 'localhost', 'gather_facts': False, 'tasks': [{'ansible.builtin.debug': {
            'msg': "kept: text={{ haproxy_sync_model_json is defined }} dict={{ haproxy_sync_model is defined }}"}}]}]))
    extra = {} if as_dict is None else {'haproxy_sync_model_as_dict': as_dict}
    result, recap = lab.sync(playbook=playbook, haproxy_sync_snapshot=str(cluster), **extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    # storing the dict costs seconds on a large cluster: the playbook keeps only the text, unless -e asks
    assert 'kept: text=True dict=%s' % bool(as_dict) in result.stdout, result.stdout[-3000:]
    # the controller's summary and drain state come from the text
    assert '"shop/web on port %d"' % lab.port in result.stdout, result.stdout[-3000:]
    assert [n['name'] for n in json.loads((lab.root / 'drain-state.json').read_text())['nodes']] == ['a-1', 'a-2']


@pytest.mark.parametrize('items', [[], [{'kind': 'Pod', 'apiVersion': 'v1', 'metadata': {'name': 'p', 'namespace': 'x'}}]])
def test_a_snapshot_that_is_not_a_cluster_stops_the_run(lab, items):
    path = lab.root / 'not-a-cluster.json'
    path.write_text(json.dumps({'apiVersion': 'v1', 'kind': 'List', 'items': items}))
    before = lab.configs()
    result, recap = lab.sync(haproxy_sync_snapshot=str(path))
    assert result.returncode != 0
    assert 'holds no Node and no Service' in result.stdout and 'not a snapshot of a cluster' in result.stdout
    assert 'lb-a' not in recap and 'lb-b' not in recap and lab.configs() == before


def test_the_role_in_the_load_balancers_own_play_collects_with_their_variables(lab):
    cluster = lab.snapshot('cluster-role', {'a-1': '127.0.1.1', 'a-2': '127.0.1.2'})
    playbook = lab.root / 'role-play.yml'
    playbook.write_text(json.dumps([{'name': 'Front the cluster', 'hosts': 'loadbalancers', 'gather_facts': False,
                                     'roles': [{'role': 'portico.k8s.haproxy_sync'}]}]))
    path = lab.root / 'role-vars.json'
    document = json.loads(lab.write_inventory(path).read_text())
    document['all']['children']['loadbalancers']['vars'] = {'haproxy_sync_snapshot': str(cluster)}
    path.write_text(json.dumps(document))
    result, recap = lab.sync(inventory_path=path, playbook=playbook)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert '2 load balancers (lb-a, lb-b); every collect option as each of them sees it' in \
        ' '.join(result.stdout.split())
    for host in LOAD_BALANCERS:
        assert 'server a-2 127.0.1.2:%d check\n' % lab.node_port in lab.config(host).read_text()
    # they collect once, with the first one's variables: so they must agree
    document['all']['children']['loadbalancers']['hosts']['lb-b']['haproxy_sync_snapshot'] = str(lab.root / 'x.json')
    path.write_text(json.dumps(document))
    before = lab.configs()
    result, recap = lab.sync(inventory_path=path, playbook=playbook)
    assert result.returncode != 0
    assert 'haproxy_sync_snapshot differs between the load balancers' in result.stdout
    assert lab.configs() == before


# ---------------------------------------------------------------- become: only on the load balancers

FAKE_SUDO = '''#!/bin/sh
# stands in for sudo on the load balancers (this machine has none): runs the command as the same user
echo "$@" >> "$(dirname "$0")/become.log"
while [ $# -gt 0 ]; do
  case "$1" in -u|-p) shift 2 ;; -*) shift ;; *) break ;; esac
done
exec "$@"
'''


@pytest.fixture(scope='module')
def unprivileged(lab):
    """A user with no sudo (this machine has no sudo at all), a lab directory of its own and a
    HAProxy per load balancer running as that user; the user is removed afterwards."""
    if os.geteuid() != 0 or not shutil.which('useradd'):
        pytest.skip('needs root, to create a user')
    user = 'portico-t%d' % os.getpid()
    subprocess.run(['useradd', '--no-create-home', '--shell', '/bin/sh', user], check=True, capture_output=True)
    # pytest's temporary directories are root's alone: this one is the user's
    root = Path(tempfile.mkdtemp(prefix='portico-become-'))
    try:
        entry = pwd.getpwnam(user)
        for name in ('tmp', 'home'):
            (root / name).mkdir()
        (root / 'fake-sudo').write_text(FAKE_SUDO)
        (root / 'fake-sudo').chmod(0o755)
        proxies = {}
        for host in LOAD_BALANCERS:
            (root / host).mkdir()
            (root / host / 'haproxy.cfg').write_text(minimal_config(root / host / 'admin.sock'))
        for path in [root] + list(root.rglob('*')):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        with contextlib.ExitStack() as stack:
            for host in LOAD_BALANCERS:
                proxy = HAProxy(root / host / 'haproxy.cfg', root / host / 'haproxy.pid')
                subprocess.run(['runuser', '-u', user, '--', HAPROXY, '-W', '-D', '-p', str(proxy.pidfile),
                                '-f', str(proxy.config)], check=True, capture_output=True, timeout=20)
                stack.callback(proxy.stop)
                proxies[host] = proxy
            # a port of its own: the lab's load balancers (root's HAProxy) bind the lab's on the same addresses
            port = [p for p in free_ports(3, 20000, 29999, list(LOAD_BALANCERS.values()))
                    if p not in (lab.port, lab.node_port)][0]
            snapshot = root / 'cluster.json'
            snapshot.write_text(json.dumps(objects.cluster_list(
                [objects.node('a-1', internal_ips='127.0.1.1')]
                + [objects.service('web', 'shop', type='NodePort',
                                   ports=[objects.service_port(port, name='http', node_port=lab.node_port)])])))
            hosts = dict((host, load_balancer(root / host, address, proxies[host].master_pid,
                                              ansible_become_exe=str(root / 'fake-sudo')))
                         for host, address in LOAD_BALANCERS.items())
            python = _python_for(user)
            (root / 'inventory.json').write_text(json.dumps(inventory(
                hosts, root, haproxy_sync_snapshot=str(snapshot), ansible_python_interpreter=python[0])))
            (root / 'play.yml').write_text(json.dumps([{
                'name': 'Front the cluster', 'hosts': 'loadbalancers', 'gather_facts': False, 'become': True,
                'roles': [{'role': 'portico.k8s.haproxy_sync'}]}]))
            for path in root.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
            yield user, root, python
    finally:
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(['userdel', user], check=False, capture_output=True)


def _python_for(user):
    """(interpreter, PYTHONPATH) with which user runs this virtualenv's ansible-core: its own python, or
    (when that lives where the user may not go, as pyenv's under /root) the system's of the same version."""
    if subprocess.run(['runuser', '-u', user, '--', sys.executable, '-c', ''], capture_output=True,
                      check=False).returncode == 0:
        return sys.executable, ''
    system = '/usr/bin/python%d.%d' % sys.version_info[:2]
    if os.path.exists(system) and subprocess.run(
            ['runuser', '-u', user, '--', system, '-c', 'import ansible, yaml, cryptography'],
            env=dict(os.environ, PYTHONPATH=sysconfig.get_path('purelib')), capture_output=True,
            check=False).returncode == 0:
        return system, sysconfig.get_path('purelib')
    pytest.skip('no Python with ansible-core that the user %s may run' % user)


def _run_as(user, root, python, *args):
    env = dict(sync_env(temp=root / 'tmp'), HOME=str(root / 'home'))
    if python[1]:
        env['PYTHONPATH'] = python[1]
    return subprocess.run(['runuser', '-u', user, '--', python[0], str(BIN / 'ansible-playbook'),
                           '-i', str(root / 'inventory.json'), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.parametrize('how', ['-b', 'become: true'])
def test_become_applies_to_the_load_balancers_and_never_to_the_controller(unprivileged, how):
    user, root, python = unprivileged
    log = root / 'become.log'
    log.unlink(missing_ok=True)
    result = _run_as(user, root, python, *(['playbooks/sync.yml', '-b'] if how == '-b' else [str(root / 'play.yml')]))
    # the controller's steps (delegated to localhost, run_once) would ask for a sudo this machine lacks
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    # the load balancers' steps did become, through their become method
    assert log.read_text().count('-u root') >= 2
    for host in LOAD_BALANCERS:
        text = (root / host / 'haproxy.cfg').read_text()
        assert 'frontend shop.web.' in text and '    server a-1 127.0.1.1:' in text
        assert (root / host / 'haproxy.cfg').stat().st_uid == pwd.getpwnam(user).pw_uid
    assert json.loads((root / 'drain-state.json').read_text())['nodes'][0]['name'] == 'a-1'


def test_an_unchanged_drain_state_is_not_rewritten_and_check_mode_shows_the_change_it_would_make(lab):
    state = lab.root / 'unchanged' / 'drain-state.json'
    cluster = lab.snapshot('cluster-u', {'u-1': '127.0.1.1'})
    result, recap = lab.sync(haproxy_sync_snapshot=str(cluster), haproxy_sync_drain_state_file=str(state))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    before = state.stat()
    result, recap = lab.sync(haproxy_sync_snapshot=str(cluster), haproxy_sync_drain_state_file=str(state))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert re.search(r'TASK \[portico\.k8s\.haproxy_sync : Remember \| record the nodes the load balancers serve\] '
                     r'\*+\nok: \[localhost\]', result.stdout), result.stdout[-3000:]
    after = state.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # another node: check mode with --diff shows the state it would keep, and keeps the old one
    text = state.read_text()
    bigger = lab.snapshot('cluster-u', {'u-1': '127.0.1.1', 'u-2': '127.0.1.2'})
    result, recap = lab.sync('--check', '--diff', haproxy_sync_snapshot=str(bigger),
                             haproxy_sync_drain_state_file=str(state))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert re.search(r'--- before: %s\n\+\+\+ after: %s\n' % (re.escape(str(state)), re.escape(str(state))),
                     result.stdout), result.stdout[-3000:]
    assert '+            "name": "u-2"' in result.stdout
    assert state.read_text() == text and state.stat().st_ino == before.st_ino


def test_a_drain_state_file_that_cannot_be_written_fails_the_run_naming_it(lab):
    locked = lab.root / 'locked'
    state = locked / 'drain-state.json'
    result, recap = lab.sync(haproxy_sync_snapshot=str(lab.snapshot('cluster-w', {'w-1': '127.0.1.1'})),
                             haproxy_sync_drain_state_file=str(state))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    text = state.read_text()
    # immutable: the state can be read, but no file can be made beside it, not even by root
    if subprocess.run(['chattr', '+i', str(locked)], capture_output=True, check=False).returncode != 0:
        pytest.skip('this file system has no immutable attribute')
    try:
        result, recap = lab.sync(haproxy_sync_snapshot=str(lab.snapshot('cluster-w', {'w-2': '127.0.1.2'})),
                                 haproxy_sync_drain_state_file=str(state))
    finally:
        subprocess.run(['chattr', '-i', str(locked)], check=True)
    assert result.returncode != 0
    output = ' '.join(result.stdout.split())
    assert ('cannot write the drain state file %s: Operation not permitted; let this user write it (and its '
            'directory), or point haproxy_sync_drain_state_file at another file; the load balancers took the '
            'model, but the file still holds the nodes an earlier run served' % state) in output, output[-3000:]
    # the load balancers took the model: only the record of the nodes is the old one
    for host in LOAD_BALANCERS:
        assert 'server w-2 127.0.1.2:%d check\n' % lab.node_port in lab.config(host).read_text()
    assert state.read_text() == text and os.listdir(str(locked)) == ['drain-state.json']
