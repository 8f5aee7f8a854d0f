"""Floating addresses over SSH: playbooks/sync.yml manages keepalived on two lab hosts, and a VIP
moves to the other load balancer when HAProxy stops on the one that holds it.

Two load balancers of the lab (tests/support/lab.py), reached over SSH with become, run Debian's
HAProxy and keepalived; a client in its own namespace sends requests to the VIP one after the
other, each on a new connection. The tests run in file order on one lab.
"""

import re
import subprocess
import time

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import identity, wait_for_spread
from tests.support.inventory import BIN, REPO, sync_env
from tests.support.lab import KEEPALIVED_RELOAD_COMMAND, Lab, LabUnavailable, check_available

pytestmark = pytest.mark.e2e

LOAD_BALANCERS = ('lb1', 'lb2')
NODES = ('worker-1', 'worker-2')
WEB, WEB_NODE_PORT = 80, 30080
SHOP, SHOP_NODE_PORT = 8080, 30880
STORE, STORE_NODE_PORT = 8081, 30881
FRONT, FRONT_NODE_PORT = 9090, 30990
# the pool of LoadBalancer Services' own addresses, floated with the VIP
POOL = '%s-%s' % (Lab.floating_address(20), Lab.floating_address(29))
VIP = Lab.floating_address(0)
RECAP = re.compile(r'^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)
FIRST_KEEPALIVED_CONF = 'global_defs {\n    router_id lab\n}\n'


def node_port_service(name, port, node_port):
    return objects.service(name, 'shop', type='NodePort',
                           ports=[objects.service_port(port, name='http', node_port=node_port)])


class Pair:
    """The lab, the test API server, and the sync run against them."""

    def __init__(self, lab, api):
        self.lab, self.api = lab, api
        self.inventory = lab.write_inventory(
            haproxy_sync_keepalived=True, haproxy_sync_vips=[VIP], haproxy_sync_vrrp_interface=lab.interface('lb1'),
            haproxy_sync_keepalived_reload_command=KEEPALIVED_RELOAD_COMMAND,
            haproxy_sync_address_pools=[{'name': 'lab', 'addresses': [POOL]}])

    def sync(self, *args, expect_failure=False):
        env = self.lab.env(sync_env())
        env.update({'K8S_AUTH_HOST': self.api.url, 'K8S_AUTH_API_KEY': self.api.token,
                    'K8S_AUTH_SSL_CA_CERT': str(self.api.ca_path), 'K8S_AUTH_VERIFY_SSL': 'true'})
        result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', str(self.inventory), 'playbooks/sync.yml', *args],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert (result.returncode != 0) is expect_failure, result.stdout[-6000:] + result.stderr[-3000:]
        recap = {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(result.stdout)}
        return result, recap

    def holders(self):
        return [host for host in LOAD_BALANCERS if self.lab.holds(host, VIP)]

    def wait_for_one_holder(self, timeout=15.0, not_on=None):
        deadline = time.monotonic() + timeout
        while True:
            holders = self.holders()
            if len(holders) == 1 and holders[0] != not_on:
                return holders[0]
            if time.monotonic() > deadline:
                raise AssertionError('the VIP is on %s after %ss; keepalived said:\n%s' % (
                    holders or 'no host', timeout, '\n'.join(self.lab.keepalived_log(h)[-1500:] for h in LOAD_BALANCERS)))
            time.sleep(0.05)

    def files(self):
        return {host: {path: data for path, data in self.lab.files(host).items() if not path.endswith('.portico-state')}
                for host in LOAD_BALANCERS}

    def other(self, host):
        return [h for h in LOAD_BALANCERS if h != host][0]


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    try:
        check_available()
    except LabUnavailable as exc:
        pytest.skip(str(exc))
    certs = tmp_path_factory.mktemp('failover-certs')
    with Lab(hosts=LOAD_BALANCERS, clients=['client'], nodes=NODES) as lab, FakeKubeAPI(certs) as api:
        for node in NODES:
            lab.node_server(node, WEB_NODE_PORT)
            lab.node_server(node, SHOP_NODE_PORT)
            lab.node_server(node, STORE_NODE_PORT)
            lab.node_server(node, FRONT_NODE_PORT)
        api.load_list(objects.cluster_list(
            [objects.node(node, internal_ips=lab.address(node)) for node in NODES]
            + [node_port_service('web', WEB, WEB_NODE_PORT)]))
        # keepalived runs before the first sync, as the package starts it: with a file that holds nothing
        for host in LOAD_BALANCERS:
            lab.path(host, '/etc/keepalived/keepalived.conf').write_text(FIRST_KEEPALIVED_CONF)
            lab.start_keepalived(host)
        yield Pair(lab, api)


def test_check_mode_shows_the_keepalived_file_and_changes_nothing(pair):
    before = pair.files()
    result, recap = pair.sync('--check', '--diff')
    assert '+        %s/32 dev eth0' % VIP in result.stdout
    assert '+    unicast_peer {' in result.stdout and '+#!/usr/bin/python3' in result.stdout
    assert result.stdout.count("passes 'keepalived -t -f <candidate>'") == 2
    assert pair.files() == before
    assert pair.holders() == []


def test_a_real_run_brings_up_the_vip_on_one_host_and_a_second_run_changes_nothing(pair):
    result, recap = pair.sync()
    assert recap['lb1'][0] >= 1 and recap['lb2'][0] >= 1, result.stdout[-3000:]
    for host in LOAD_BALANCERS:
        conf = pair.lab.path(host, '/etc/keepalived/keepalived.conf').read_text()
        assert '    unicast_src_ip %s\n    unicast_peer {\n        %s\n    }' % (
            pair.lab.address(host), pair.lab.address(pair.other(host))) in conf
        script = pair.lab.path(host, '/etc/keepalived/portico-haproxy-check')
        # keepalived runs it as root only when no one else can write it
        assert (script.stat().st_uid, oct(script.stat().st_mode & 0o777)) == (0, '0o755')
    holder = pair.wait_for_one_holder()
    served = pair.lab.in_netns('client', wait_for_spread, VIP, WEB, {identity(n, WEB_NODE_PORT) for n in NODES})
    assert set(served) == {identity(n, WEB_NODE_PORT) for n in NODES}

    before = pair.files()
    result, recap = pair.sync()
    assert recap['lb1'] == (0, 0) and recap['lb2'] == (0, 0), result.stdout[-3000:]
    assert pair.files() == before and pair.holders() == [holder]


def test_the_holder_is_updated_last_and_a_load_balancer_service_address_floats_with_the_vip(pair):
    holder = pair.wait_for_one_holder()
    pair.api.add_service(node_port_service('shop', SHOP, SHOP_NODE_PORT))
    pair.api.add_service(objects.service('front', 'shop', type='LoadBalancer', load_balancer_class='portico.io/haproxy',
                                         ports=[objects.service_port(FRONT, name='http', node_port=FRONT_NODE_PORT)]))
    result, recap = pair.sync()
    address = Lab.floating_address(20)
    # the Service's own address: written to its status, held by the VIP's holder, served there
    status = pair.api.get('services', 'front', 'shop')['status']['loadBalancer']['ingress']
    assert [entry['ip'] for entry in status] == [address]
    deadline = time.monotonic() + 10
    while not pair.lab.holds(holder, address):
        assert time.monotonic() < deadline, pair.lab.keepalived_log(holder)[-2000:]
        time.sleep(0.05)
    assert not pair.lab.holds(pair.other(holder), address)
    served = pair.lab.in_netns('client', wait_for_spread, address, FRONT, {identity(n, FRONT_NODE_PORT) for n in NODES})
    assert set(served) == {identity(n, FRONT_NODE_PORT) for n in NODES}
    order = re.findall(r'Bring HAProxy on this load balancer to the routing model\]\s+\*+\s+(?:changed|ok): \[(\w+)\]',
                       result.stdout)
    assert order == [pair.other(holder), holder], result.stdout[-4000:]
    assert pair.holders() == [holder]


def test_stopping_haproxy_on_the_holder_moves_the_vip_within_3_seconds(pair):
    holder = pair.wait_for_one_holder()
    other = pair.other(holder)
    with pair.lab.load('client', VIP, WEB, timeout=3.0, pause=0.05) as load:
        load.wait_for(20)
        stopped = time.monotonic()
        pair.lab.stop_haproxy(holder)
        moved_to = pair.wait_for_one_holder(timeout=10, not_on=holder)
        moved = time.monotonic() - stopped
        load.wait_for(20)
    results = list(load.results)
    failures = [r for r in results if not r[1]]
    after = [r for r in results if r[0] > stopped]
    recovered = next(r[0] for r in after if r[1]) - stopped
    print('failover: the VIP moved in %.2f s; %d of %d requests failed; the first success after the stop came after '
          '%.2f s' % (moved, len(failures), len(results), recovered))
    assert moved_to == other and moved <= 3.0
    # the health check looks every 0.1 s, and the address leaves before the other host announces it: the
    # requests of that moment may fail (one in flight, and one every 50 ms while the check has not looked
    # yet); those sent in between wait for their SYN to be sent again, and succeed
    assert all(stopped <= r[0] <= stopped + moved + 0.5 for r in failures), failures
    assert len(failures) <= 5, failures
    assert results[-1][1]


def test_the_old_holder_does_not_take_the_vip_back_when_haproxy_returns(pair):
    holder = pair.wait_for_one_holder()
    old = pair.other(holder)
    pair.lab.start_haproxy(old)
    # its health check passes again (rise 2, one run a second) and it stays a backup: no preemption
    time.sleep(4)
    assert pair.holders() == [holder]
    result, recap = pair.sync()
    assert pair.holders() == [holder]


def test_a_sync_the_holder_refuses_moves_the_vip_to_the_updated_host(pair):
    holder = pair.wait_for_one_holder()
    other = pair.other(holder)
    # the validate command refuses every file on the holder alone (as a file haproxy -c refuses there would)
    pair.api.add_service(node_port_service('store', STORE, STORE_NODE_PORT))
    pair.lab.run(holder, ['touch', '/etc/haproxy/refuse'])
    result, recap = pair.sync('-e', '{"haproxy_sync_validate_command": "/bin/sh -c \\"test ! -e /etc/haproxy/refuse '
                              '&& haproxy -c -f %s\\""}', expect_failure=True)
    assert recap[other] == (1, 0) and recap[holder][1] == 1, result.stdout[-4000:]
    assert 'failed to validate' in result.stdout
    assert pair.lab.path(holder, '/etc/haproxy/haproxy.cfg.portico-refused').exists()
    # its health check fails now: the VIP goes to the host that took the new configuration
    assert pair.wait_for_one_holder(timeout=5, not_on=holder) == other
    served = pair.lab.in_netns('client', wait_for_spread, VIP, STORE, {identity(n, STORE_NODE_PORT) for n in NODES})
    assert set(served) == {identity(n, STORE_NODE_PORT) for n in NODES}
    pair.lab.run(holder, ['rm', '-f', '/etc/haproxy/refuse'])
    result, recap = pair.sync()
    assert not pair.lab.path(holder, '/etc/haproxy/haproxy.cfg.portico-refused').exists()
    assert pair.holders() == [other]


def test_a_holder_that_goes_silent_is_replaced_within_3_seconds(pair):
    holder = pair.wait_for_one_holder()
    other = pair.other(holder)
    pair.lab.set_link(holder, False)
    try:
        cut = time.monotonic()
        while not pair.lab.holds(other, VIP):
            assert time.monotonic() - cut < 10, pair.lab.keepalived_log(other)[-2000:]
            time.sleep(0.05)
        moved = time.monotonic() - cut
        print('failover: a holder cut off was replaced in %.2f s' % moved)
        assert moved <= 3.0
        status, body = pair.lab.client_request('client', VIP, WEB)
        assert status == 200 and body in {identity(n, WEB_NODE_PORT) for n in NODES}
    finally:
        pair.lab.set_link(holder, True)
    # back on the link, the two settle on one holder again
    pair.wait_for_one_holder()
