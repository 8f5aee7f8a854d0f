"""Server changes through HAProxy's runtime API, without a reload: portico.k8s.haproxy_config run
as Ansible runs it, against real HAProxy instances in master-worker mode on 127.0.0.0/8, with
stand-in nodePorts that answer real HTTP."""

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _config, _haproxy, _model, _report, _runtime, _servers
from tests.support.haproxy import HAProxy, NodePortServer, free_ports, http_get, minimal_config
from tests.unit.plugins.modules.test_haproxy_config import Host, node, service

# two test workers that share a network (ansible-test units) each take addresses of their own
_WORKER = int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0) % 100
LBS = ('127.0.%d.33' % (100 + _WORKER), '127.0.%d.34' % (100 + _WORKER))
NODES = dict(('w%d' % number, '127.0.%d.%d' % (2 + _WORKER, 40 + number)) for number in range(12))
# long client and server timeouts: an idle connection must outlive the whole churn
BASE_TIMEOUTS = (('    timeout client 10s\n', '    timeout client 300s\n'),
                 ('    timeout server 10s\n', '    timeout server 300s\n'))


def base(socket_path, level='admin'):
    text = minimal_config(socket_path, hard_stop_after='2s').replace('level admin', 'level ' + level)
    for old, new in BASE_TIMEOUTS:
        text = text.replace(old, new)
    return text


def routing(names, ports, read_at, draining=(), annotations=None):
    """The model of services on ports (nodePort 31000 + index) served by the nodes names."""
    services = []
    for index, port in enumerate(ports):
        one = service('s%d' % index, port, 31000 + index)
        one['annotations'] = dict(annotations or {})
        services.append(one)
    state = {'nodes': [{'name': name, 'address': NODES[name]} for name in draining]}
    built = _model.build_model([node(name, NODES[name]) for name in names], services,
                               {'drain_state': state, 'drain_seconds': 3600, 'now': read_at},
                               {'kind': 'snapshot', 'snapshot': 'c.json'})
    built['source']['read_at'] = read_at
    return built


class LoadBalancer(Host):
    def __init__(self, root, proxy, address, level='admin'):
        super().__init__(root, proxy)
        self.address = address
        self.base = base(self.socket, level)

    def call(self, the_model, **args):
        return super().call(the_model, bind_address=self.address, **args)

    def expected(self, the_model):
        return _config.compose(self.base, _haproxy.render(the_model, self.address, str(self.root / 'certs')))

    def running(self):
        state = _servers.read_state(_runtime.ask(str(self.socket), 'show servers state'))
        for name in _runtime.backends(str(self.socket)):
            state.setdefault(name, {})
        return state

    def file_backends(self):
        return _servers.read_backends(_servers.split(self.config.read_text())[1])[1]


@contextlib.contextmanager
def load_balancers(tmp_path, count, level='admin'):
    with contextlib.ExitStack() as stack:
        hosts = []
        for address in LBS[:count]:
            root = tmp_path / address
            root.mkdir()
            (root / 'haproxy.cfg').write_text(base(root / 'admin.sock', level))
            proxy = stack.enter_context(HAProxy(root / 'haproxy.cfg', root / 'haproxy.pid'))
            hosts.append(LoadBalancer(root, proxy, address, level))
        yield hosts


@contextlib.contextmanager
def nodeports(names, count):
    with contextlib.ExitStack() as stack:
        yield dict(((name, 31000 + index), stack.enter_context(NodePortServer(name, NODES[name], 31000 + index)))
                   for name in names for index in range(count))


class Clients(threading.Thread):
    """New connection after new connection to every load balancer until stopped (or 2 minutes)."""

    def __init__(self, targets):
        super().__init__(daemon=True)
        self.targets, self.ok, self.failures = targets, 0, []
        self.done = threading.Event()

    def run(self):
        deadline = time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            for address, port in self.targets:
                try:
                    status, body = http_get(address, port, timeout=5)
                    if status == 200 and body.startswith('node='):
                        self.ok += 1
                    else:
                        self.failures.append('%s:%d HTTP %d %r' % (address, port, status, body))
                except OSError as exc:
                    self.failures.append('%s:%d %r' % (address, port, exc))
        if time.monotonic() >= deadline:
            self.failures.append('the clients ran out of their 2 minutes')


def agree(lb):
    """The running HAProxy serves exactly the servers its file says (servers still leaving apart)."""
    assert _servers.disagreements(lb.running(), lb.file_backends()) == []


@pytest.fixture
def ports():
    return free_ports(2, 22000, 22999, LBS)


def test_node_churn_reaches_both_load_balancers_without_a_reload_and_keeps_every_connection(tmp_path, ports):
    steady = ['w0', 'w1']
    churn = ['w%d' % n for n in range(2, 12)]
    with load_balancers(tmp_path, 2) as lbs, nodeports(list(NODES), 1):
        for lb in lbs:
            first = lb.call(routing(steady, ports[:1], 1000.0))
            assert first['reloaded'] and first['reload_reason'] == 'the current file has no generated part', first
        states = [lb.proxy.state() for lb in lbs]
        # an idle connection opened before the churn: it must still be served after it
        idle = socket.create_connection((LBS[0], ports[0]), timeout=5)
        clients = Clients([(lb.address, ports[0]) for lb in lbs])
        clients.start()
        served, messages = set(steady), []
        try:
            for sync in range(20):
                # a node joins at each of the first ten syncs and one leaves at each of the next; some drain first
                joined = churn[:(sync % 10) + 1] if sync < 10 else churn[sync - 9:]
                draining = [churn[sync - 10]] if sync >= 10 and sync % 4 == 0 else []
                names = sorted(steady + [n for n in joined if n not in draining])
                the_model = routing(names, ports[:1], 1001.0 + sync, draining=draining)
                for lb in lbs:
                    result = lb.call(the_model)
                    assert not result.get('failed'), result
                    assert result['applied_at_runtime'] and not result['reloaded'], result
                    assert result['reload_reason'] is None and result['runtime_changes'] >= 1, result
                    # a draining node no connection uses at that moment goes at once
                    gone = result.get('drained') or []
                    assert lb.config.read_text() == lb.expected(dict(the_model, draining_nodes=[
                        n for n in the_model['draining_nodes'] if n['name'] not in gone]))
                    agree(lb)
                    messages.append(result['msg'])
                served |= set(names)
        finally:
            clients.done.set()
            clients.join(timeout=30)
        assert clients.failures == [] and clients.ok > 40, (clients.ok, clients.failures[:5])
        # no reload: the same master and the same worker on each load balancer
        assert [lb.proxy.state() for lb in lbs] == states
        idle.sendall(b'GET / HTTP/1.0\r\n\r\n')
        idle.settimeout(5)
        answer = b''.join(iter(lambda: idle.recv(4096), b''))
        idle.close()
        assert answer.startswith(b'HTTP/1.0 200') and b'node=' in answer, answer
        assert any(' added)' in m for m in messages), messages
        assert any('removed)' in m for m in messages)
        assert any('reweighted' in m or 'removed at once' in m for m in messages)
        assert served == set(NODES)


def test_a_node_and_a_new_service_together_reload_once_and_the_next_node_change_does_not(tmp_path, ports):
    with load_balancers(tmp_path, 1) as (lb,), nodeports(['w0', 'w1', 'w2'], 2):
        # each run is counted in the textfile: a reload, then one without, and how many servers changed
        textfile = str(lb.root / 'portico.prom')
        lb.call(routing(['w0'], ports[:1], 1000.0), slowstart='5s', textfile=textfile)
        before = lb.proxy.state()
        mixed = lb.call(routing(['w0', 'w1'], ports, 1001.0), slowstart='5s', textfile=textfile)
        assert mixed['reloaded'] and not mixed['applied_at_runtime'], mixed
        assert mixed['reload_reason'].startswith('frontends, backends or their settings changed'), mixed
        after = lb.proxy.state()
        assert after.master == before.master and not after.workers & before.workers
        agree(lb)
        assert http_get(LBS[0], ports[1])[0] == 200
        # a node that joins at runtime ramps up as the file says (slowstart)
        node_only = lb.call(routing(['w0', 'w1', 'w2'], ports, 1002.0), slowstart='5s', textfile=textfile)
        assert node_only['applied_at_runtime'] and node_only['runtime_changes'] == 2, node_only
        assert lb.proxy.state() == after
        assert '    server w2 %s:31001 check slowstart 5s\n' % NODES['w2'] in lb.config.read_text()
        agree(lb)
        record = _report.read_textfile(Path(textfile).read_text())
        assert (record['successes'], record['reloads'], record['runtime_updates'], record['runtime_server_changes']) \
            == (3, 2, 1, 2)
        assert record['last_run_runtime_changes'] == 2 and not record['last_run_reloaded']
        assert record['generation'] == node_only['generation'] and record['counts']['eligible_nodes'] == 3
        assert record['model_read_at'] == 1002.0


def test_a_refused_runtime_command_falls_back_to_the_reload_and_the_file_and_haproxy_agree(tmp_path, ports):
    # a stats socket at level operator shows the state but refuses "add server"
    with load_balancers(tmp_path, 1, level='operator') as (lb,), nodeports(['w0', 'w1'], 1):
        lb.call(routing(['w0'], ports[:1], 1000.0))
        before = lb.proxy.state()
        result = lb.call(routing(['w0', 'w1'], ports[:1], 1001.0))
        assert result['reloaded'] and not result['applied_at_runtime'], result
        assert result['reload_reason'].startswith("HAProxy refused 'add server shop.s0.%d/w1 %s:31000 check"
                                                  % (ports[0], NODES['w1'])), result
        assert 'Permission denied' in result['reload_reason'], result
        assert 'because HAProxy refused' in result['msg']
        # the old worker leaves once its connections end: waited for, as a loaded machine is slow
        lb.proxy.wait_reloaded(before)
        agree(lb)


def test_after_runtime_changes_a_restart_serves_exactly_what_the_file_says(tmp_path, ports):
    # balance source: the servers' places on the hash ring (their ids) must survive the restart too
    hashed = {'balance': 'source'}
    with load_balancers(tmp_path, 1) as (lb,), nodeports(['w0', 'w1', 'w2', 'w3'], 1):
        lb.call(routing(['w3'], ports[:1], 1000.0, annotations=hashed))
        # a connection on w3, so that it drains (weight 0) rather than going at once
        held = socket.create_connection((LBS[0], ports[0]), timeout=5)
        try:
            assert _wait(lambda: _sessions(lb).get('w3') == 1)
            result = lb.call(routing(['w0', 'w1', 'w2'], ports[:1], 1001.0, draining=['w3'], annotations=hashed))
            assert result['applied_at_runtime'] and result['runtime_changes'] == 4 and 'drained' not in result, result
        finally:
            held.close()
        live = _runtime.ask(str(lb.socket), 'show servers state')
        lb.proxy.stop()
        lb.proxy.start()
        again = _runtime.ask(str(lb.socket), 'show servers state')

        def identity(text):
            # backend, server id, name, address, admin state, weight and port of each server
            return sorted((f[1], f[2], f[3], f[4], f[6], f[7], f[18]) for f in
                          (line.split(' ') for line in text.split('\n')[2:] if line.strip()))
        assert identity(live) == identity(again) and len(identity(live)) == 4
        assert [f[5] for f in identity(live) if f[2] == 'w3'] == ['0']
        assert '    hash-type consistent' in lb.config.read_text()


def test_check_mode_says_which_way_each_change_would_go_and_changes_nothing(tmp_path, ports):
    with load_balancers(tmp_path, 1) as (lb,), nodeports(['w0', 'w1'], 2):
        before = lb.proxy.state()
        lb.call(routing(['w0'], ports[:1], 1000.0))
        # the first install's reload is over (its old worker gone) before the state is compared
        lb.proxy.wait_reloaded(before)
        files, state, running = lb.files(), lb.proxy.state(), lb.running()
        node_only = lb.call(routing(['w0', 'w1'], ports[:1], 1001.0), check_mode=True)
        assert node_only['changed'] and node_only['runtime_changes'] == 1 and node_only['reload_reason'] is None
        assert node_only['msg'].endswith('it would be applied through the runtime API without a reload: '
                                         '1 server change (1 added).'), node_only['msg']
        mixed = lb.call(routing(['w0', 'w1'], ports, 1001.0), check_mode=True)
        assert mixed['msg'].endswith('HAProxy would be reloaded, because frontends, backends or their settings '
                                     'changed (frontend shop.s1.%d is new).' % ports[1]), mixed['msg']
        assert lb.files() == files and lb.proxy.state() == state and lb.running() == running


def test_runtime_changes_off_reloads_and_a_comment_only_change_does_not(tmp_path, ports):
    with load_balancers(tmp_path, 1) as (lb,), nodeports(['w0', 'w1'], 1):
        lb.call(routing(['w0'], ports[:1], 1000.0))
        result = lb.call(routing(['w0', 'w1'], ports[:1], 1001.0), runtime_changes=False)
        assert result['reloaded'] and 'turned off' in result['reload_reason'], result
        state = lb.proxy.state()
        # one more excluded service changes the header's counts only
        the_model = routing(['w0', 'w1'], ports[:1], 1002.0)
        the_model['excluded_services'] = [{'service': 'shop/other', 'reason': 'no nodePort'}]
        quiet = lb.call(the_model)
        assert quiet['changed'] and quiet['applied_at_runtime'] and quiet['runtime_changes'] == 0, quiet
        assert 'only its comments changed' in quiet['msg'] and lb.proxy.state() == state


def test_a_removed_server_with_a_connection_stays_in_maintenance_until_it_ends_then_goes(tmp_path, ports):
    with load_balancers(tmp_path, 1) as (lb,), nodeports(['w0', 'w1'], 1):
        lb.call(routing(['w1'], ports[:1], 1000.0))
        held = socket.create_connection((LBS[0], ports[0]), timeout=5)
        backend = 'shop.s0.%d' % ports[0]
        try:
            # w1 is the only server, so the held connection is on it
            assert _wait(lambda: _sessions(lb).get('w1') == 1)
            result = lb.call(routing(['w0'], ports[:1], 1001.0))
            assert result['applied_at_runtime'] and result['leaving'] == [backend + '/w1'], result
            assert 'still finish their connections in maintenance (%s/w1)' % backend in result['msg']
            assert lb.running()[backend]['w1']['admin'] & _servers.FORCED_MAINT
            agree(lb)
            # nothing new reaches it
            assert http_get(LBS[0], ports[0])[1] == 'node=w0 port=31000'
            again = lb.call(routing(['w0'], ports[:1], 1002.0))
            assert not again['changed'] and again['leaving'] == [backend + '/w1'], again
        finally:
            held.close()
        assert _wait(lambda: not _sessions(lb).get('w1'))
        done = lb.call(routing(['w0'], ports[:1], 1003.0))
        assert done['changed'] and done['leaving'] == [] and 'w1' not in lb.running()[backend], done
        assert done['msg'].endswith('1 removed server(s) finished their connections and were deleted from the running '
                                    'HAProxy.'), done['msg']


def test_a_draining_node_no_connection_uses_is_removed_at_once_and_a_busy_one_drains(tmp_path, ports):
    with load_balancers(tmp_path, 1) as (lb,), nodeports(['w0', 'w1', 'w2'], 1):
        lb.call(routing(['w0', 'w1'], ports[:1], 1000.0))
        # one connection each (roundrobin): then w1's ends, and w0 still has one when both go
        held = [socket.create_connection((LBS[0], ports[0]), timeout=5)]
        try:
            assert _wait(lambda: sum(_sessions(lb).values()) == 1)
            first_on = next(name for name, count in _sessions(lb).items() if count)
            held.append(socket.create_connection((LBS[0], ports[0]), timeout=5))
            assert _wait(lambda: _sessions(lb) == {'w0': 1, 'w1': 1})
            held.pop(0 if first_on == 'w1' else 1).close()
            assert _wait(lambda: _sessions(lb) == {'w0': 1, 'w1': 0})
            result = lb.call(routing(['w2'], ports[:1], 1001.0, draining=['w0', 'w1']))
            assert result['applied_at_runtime'] and result['drained'] == ['w1'], result
            assert 'Draining node(s) no connection uses any more were removed at once: w1.' in result['msg']
            text = lb.config.read_text()
            assert '    server w0 %s:31000 check weight 0\n' % NODES['w0'] in text and 'server w1 ' not in text
            agree(lb)
        finally:
            for connection in held:
                connection.close()


def _sessions(lb):
    return _servers.sessions(_runtime.ask(str(lb.socket), 'show stat -1 4 -1'), _runtime.backends(str(lb.socket)))


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_malformed_list_of_draining_nodes_is_a_clear_failure_not_a_traceback(tmp_path, ports):
    with load_balancers(tmp_path, 1) as (lb,):
        lb.call(routing(['w0'], ports[:1], 1000.0))
        files = lb.files()
        for draining in (['w1'], [{'address': NODES['w1']}]):
            result = lb.call(dict(routing(['w0'], ports[:1], 1001.0), draining_nodes=draining))
            assert result['failed'] and 'the model is not one portico.k8s.nodeport_info returns' in result['msg'], result
            assert lb.files() == files
