"""End-to-end: LoadBalancer Services get their own addresses, served by real HAProxy and written back.

Two load balancers run on this machine's loopback; the address pool is 127.0.5.0/24, so each
Service's own address is a loopback address both load balancers bind. The test API server keeps
the status subresource and Events as a real one does. The tests run in file order on one lab.
"""

import contextlib
import json
import os
import re
import subprocess

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import free_ports, identity, nodeport_servers, start_load_balancers, wait_for_spread
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LOAD_BALANCERS = {'lb-1': '127.0.0.61', 'lb-2': '127.0.0.62'}
NODES = {'worker-1': '127.0.1.61', 'worker-2': '127.0.1.62'}
POOLS = [{'name': 'lab', 'addresses': ['127.0.5.0/24']}]
CLASS = 'portico.io/haproxy'
RECAP = re.compile(r'^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)


class Lab:
    def __init__(self, root, api, node_ports):
        self.root, self.api, self.node_ports = root, api, node_ports
        self.proxies = {}

    def write_inventory(self, **all_vars):
        hosts = dict((host, load_balancer(self.root / host, address, self.proxies[host].master_pid))
                     for host, address in LOAD_BALANCERS.items())
        variables = {'haproxy_sync_address_pools': POOLS}
        variables.update(all_vars)
        (self.root / 'inventory.json').write_text(json.dumps(inventory(hosts, self.root, **variables)))

    def sync(self, *args, token=None):
        result = subprocess.run(
            [str(BIN / 'ansible-playbook'), '-i', str(self.root / 'inventory.json'), 'playbooks/sync.yml', *args],
            cwd=REPO, env=sync_env(self.api, token, self.root / 'tmp'), capture_output=True, text=True,
            timeout=240, check=False)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        return result, {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(result.stdout)}

    def status(self, name, namespace='shop'):
        return self.api.get('services', name, namespace).get('status', {}).get('loadBalancer', {})

    def writes(self):
        """The writes the API server took since the last clear_requests (method, path)."""
        return [(r.method, r.path) for r in self.api.requests
                if r.method in ('POST', 'PUT', 'PATCH', 'DELETE') and r.status is not None and r.status < 300]

    def events(self, namespace='shop'):
        return sorted((e['regarding']['name'], e['reason'], e['note']) for e in self.api.list('events', namespace))

    def kubectl(self, *args):
        kubeconfig = self.api.write_kubeconfig(self.root / 'kubeconfig')
        return subprocess.run(['kubectl', '--request-timeout=10s', '--cache-dir=%s' % (self.root / 'kube-cache'),
                               *args], env=dict(os.environ, KUBECONFIG=str(kubeconfig)),
                              capture_output=True, text=True, timeout=60, check=False)


def load_balancer_service(name, port, node_port, cls=CLASS, **extra):
    return objects.service(name, 'shop', type='LoadBalancer', load_balancer_class=cls,
                           ports=[objects.service_port(port, name='http', node_port=node_port)], **extra)


def expect(address, port, node_port):
    wanted = set(identity(node, node_port) for node in NODES)
    served = wait_for_spread(address, port, wanted)
    assert set(served) == wanted, '%s:%d served %s, expected %s' % (address, port, dict(served), sorted(wanted))


def ingress(address, *ports):
    return [{'ip': address, 'ipMode': 'Proxy', 'ports': [{'port': port, 'protocol': 'TCP'} for port in ports]}]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('lb')
    node_ports = free_ports(4, 30000, 32767, list(NODES.values()))
    with FakeKubeAPI(root / 'certs') as api, nodeport_servers(NODES, node_ports), contextlib.ExitStack() as stack:
        lab = Lab(root, api, node_ports)
        api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in NODES.items()]
            + [load_balancer_service('web', 80, node_ports[0], created='2026-11-01T00:00:00Z'),
               load_balancer_service('api', 80, node_ports[1], created='2026-11-02T00:00:00Z'),
               load_balancer_service('other', 8081, node_ports[3], cls='example.com/elsewhere')]))
        lab.proxies.update(start_load_balancers(stack, root, LOAD_BALANCERS))
        lab.write_inventory()
        yield lab


def test_two_services_on_port_80_get_two_addresses_and_both_serve(lab):
    result, recap = lab.sync()
    assert recap['lb-1'][0] >= 1 and recap['lb-2'][0] >= 1
    expect('127.0.5.1', 80, lab.node_ports[0])
    expect('127.0.5.2', 80, lab.node_ports[1])
    # a LoadBalancer of another class is still served on the shared bind, and gets no status
    expect(LOAD_BALANCERS['lb-1'], 8081, lab.node_ports[3])
    for host in LOAD_BALANCERS:
        text = (lab.root / host / 'haproxy.cfg').read_text()
        assert 'bind 127.0.5.1:80 transparent' in text and 'bind 127.0.5.2:80 transparent' in text


def test_their_status_shows_the_address_with_ip_mode_proxy_written_by_portico(lab):
    assert lab.status('web') == {'ingress': ingress('127.0.5.1', 80)}
    assert lab.status('api') == {'ingress': ingress('127.0.5.2', 80)}
    assert lab.status('other') == {}
    managers = [(f['manager'], f.get('subresource')) for f in lab.api.get('services', 'web', 'shop')['metadata']['managedFields']]
    assert ('portico', 'status') in managers
    assert lab.events() == [('api', 'AddressAssigned', 'assigned 127.0.5.2 from pool lab'),
                            ('web', 'AddressAssigned', 'assigned 127.0.5.1 from pool lab')]


def test_kubectl_shows_the_external_ip(lab):
    shown = lab.kubectl('get', 'services', '-n', 'shop')
    assert shown.returncode == 0, shown.stderr
    rows = dict((line.split()[0], line.split()) for line in shown.stdout.splitlines()[1:])
    assert rows['web'][3] == '127.0.5.1' and rows['api'][3] == '127.0.5.2'
    assert rows['other'][3] == '<pending>'


def test_a_second_run_writes_nothing(lab):
    lab.api.clear_requests()
    result, recap = lab.sync()
    assert recap['lb-1'] == (0, 0) and recap['lb-2'] == (0, 0) and recap['localhost'][0] == 0
    assert lab.writes() == []


def test_check_mode_shows_the_address_and_status_it_would_write_and_writes_nothing(lab):
    lab.api.create(load_balancer_service('shop', 443, lab.node_ports[2], created='2026-11-03T00:00:00Z'))
    lab.api.clear_requests()
    result, recap = lab.sync('--check', '--diff')
    assert lab.writes() == []
    assert lab.status('shop') == {}
    assert 'shop/shop at 127.0.5.3' in result.stdout
    assert '+    "ip": "127.0.5.3",' in result.stdout
    assert '+# Event AddressAssigned (Normal): assigned 127.0.5.3 from pool lab' in result.stdout


def test_a_service_that_stops_being_a_load_balancer_frees_its_address(lab):
    web = lab.api.get('services', 'web', 'shop')
    web['spec']['type'] = 'NodePort'
    web['spec'].pop('loadBalancerClass', None)
    web['spec'].pop('allocateLoadBalancerNodePorts', None)
    lab.api.update(web)
    # the API server itself clears the status of a Service that is no longer a LoadBalancer
    assert lab.status('web') == {}
    lab.sync()
    # the freed address goes to the next Service that needs one: the lowest free
    assert lab.status('shop') == {'ingress': ingress('127.0.5.1', 443)}
    assert lab.status('api') == {'ingress': ingress('127.0.5.2', 80)}
    expect('127.0.5.1', 443, lab.node_ports[2])
    # web is a NodePort service now, on the shared bind
    expect(LOAD_BALANCERS['lb-2'], 80, lab.node_ports[0])
    lab.api.clear_requests()
    lab.sync()
    assert lab.writes() == []


def test_services_portico_no_longer_implements_have_its_status_removed_and_others_get_theirs(lab):
    lab.write_inventory(haproxy_sync_load_balancer_class='example.com/elsewhere')
    lab.sync()
    assert lab.status('api') == {} and lab.status('shop') == {}
    assert lab.status('other') == {'ingress': ingress('127.0.5.1', 8081)}
    expect('127.0.5.1', 8081, lab.node_ports[3])
    events = lab.events()
    assert ('api', 'AddressReleased', 'released 127.0.5.2') in events
    assert ('shop', 'AddressReleased', 'released 127.0.5.1') in events
    assert ('other', 'AddressAssigned', 'assigned 127.0.5.1 from pool lab') in events


def test_without_a_pool_the_services_of_the_class_are_refused_with_a_warning_event(lab):
    lab.write_inventory(haproxy_sync_load_balancer_class='example.com/elsewhere', haproxy_sync_address_pools=[])
    result, recap = lab.sync()
    assert lab.status('other') == {}
    # the address it had is released, with the reason
    assert ('other', 'AddressRefused',
            'no address: no address pool is configured (option address_pools); released 127.0.5.1') in lab.events()
    assert 'shop/other all ports: no address: no address pool is configured' in result.stdout
    lab.api.clear_requests()
    lab.sync()
    # the same news is not told twice: the Event's name is taken (409), nothing is written
    assert lab.writes() == []
    lab.write_inventory()


def test_without_rbac_for_status_the_sync_serves_and_says_once_that_it_cannot_write(lab):
    lab.api.add_token('reader', 'system:serviceaccount:portico:reader',
                      forbidden=[('patch', 'services/status'), ('create', 'events')])
    lab.api.delete('services', 'shop', 'shop')
    lab.api.create(load_balancer_service('late', 8443, lab.node_ports[2], created='2026-11-04T00:00:00Z'))
    result, recap = lab.sync(token='reader')
    assert lab.status('late') == {} and lab.status('api') == {}
    said = ' '.join((result.stdout + result.stderr).split())
    assert said.count('cannot write the status of LoadBalancer services (403 Forbidden') == 1
    assert 'grant "patch" on "services/status"' in said
    # served all the same, on the address it will get once its status can be written
    expect('127.0.5.2', 8443, lab.node_ports[2])


def test_a_run_limited_to_some_load_balancers_writes_no_status(lab):
    result, recap = lab.sync('--limit', 'lb-1,localhost')
    assert lab.status('late') == {}
    said = ' '.join((result.stdout + result.stderr).split())
    assert "load balancer(s) lb-2 did not install and verify this run's configuration" in said
    result, recap = lab.sync()
    assert lab.status('late') == {'ingress': ingress('127.0.5.2', 8443)}
    assert lab.status('api') == {'ingress': ingress('127.0.5.1', 80)}
