"""End-to-end over SSH: playbooks/sync.yml reaches two lab hosts as an unprivileged user with become.

The lab (tests/support/lab.py) gives each load balancer its own network and mount namespaces,
Debian's sshd and Debian's HAProxy layout (/etc/haproxy, user haproxy, chroot /var/lib/haproxy,
the stats socket in /run/haproxy). The sync logs in as ``portico`` with a key the lab made,
becomes root through sudo and runs its module with the Python it discovers on the host; the
only role variable the inventory sets is the reload command, as the lab has no systemd. The
client and the node stand-ins are hosts of the lab too, so the traffic checked crosses its
bridge. The tests run in file order on one lab.
"""

import re
import subprocess
import sys

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.collection import build_and_install
from tests.support.haproxy import identity, wait_for_spread
from tests.support.inventory import BIN, REPO, sync_env
from tests.support.lab import Lab, LabUnavailable, check_available

pytestmark = pytest.mark.e2e

LOAD_BALANCERS = ('lb1', 'lb2')
NODES = ('worker-1', 'worker-2')
WEB, SHOP = 80, 8080
WEB_NODE_PORT, SHOP_NODE_PORT = 30080, 30880
RECAP = re.compile(r'^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)


def node_port_service(name, port, node_port):
    return objects.service(name, 'shop', type='NodePort',
                           ports=[objects.service_port(port, name='http', node_port=node_port)])


class Run:
    def __init__(self, lab, api):
        self.lab, self.api = lab, api
        self.inventory = lab.write_inventory()

    def sync(self, *args, playbook='playbooks/sync.yml', env=None, cwd=REPO):
        env = self.lab.env(env or sync_env())
        env.update({'K8S_AUTH_HOST': self.api.url, 'K8S_AUTH_API_KEY': self.api.token,
                    'K8S_AUTH_SSL_CA_CERT': str(self.api.ca_path), 'K8S_AUTH_VERIFY_SSL': 'true'})
        result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', str(self.inventory), playbook, *args],
                                cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        recap = {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(result.stdout)}
        assert set(recap) == {'localhost', *LOAD_BALANCERS}, result.stdout[-3000:]
        return result, recap

    def apply(self, *args, **options):
        before = {host: self.lab.haproxy(host).state() for host in LOAD_BALANCERS}
        result, recap = self.sync(*args, **options)
        for host in LOAD_BALANCERS:
            assert recap[host][0] >= 1, result.stdout[-3000:]
            self.lab.haproxy(host).wait_reloaded(before[host])
        return result, recap

    def hosts_state(self):
        """Every load balancer's files under /etc/haproxy and /etc/keepalived, and its HAProxy processes;
        the .portico-state record aside (a run that changes nothing still records the model it saw)."""
        return {host: ({path: data for path, data in self.lab.files(host).items() if not path.endswith('.portico-state')},
                       self.lab.haproxy(host).state()) for host in LOAD_BALANCERS}

    def expect(self, port, node_port):
        """From the client, every load balancer's port reaches every node's stand-in."""
        wanted = {identity(node, node_port) for node in NODES}
        for host in LOAD_BALANCERS:
            served = self.lab.in_netns('client', wait_for_spread, self.lab.address(host), port, wanted)
            assert set(served) == wanted, '%s:%d served %s, expected %s' % (host, port, dict(served), sorted(wanted))


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    try:
        check_available()
    except LabUnavailable as exc:
        pytest.skip(str(exc))
    certs = tmp_path_factory.mktemp('ssh-lab-certs')
    # the test API server inside the lab: it listens on the controller's loopback
    with Lab(hosts=LOAD_BALANCERS, clients=['client'], nodes=NODES) as lab, FakeKubeAPI(certs) as api:
        for node in NODES:
            lab.node_server(node, WEB_NODE_PORT)
            lab.node_server(node, SHOP_NODE_PORT)
        api.load_list(objects.cluster_list(
            [objects.node(node, internal_ips=lab.address(node)) for node in NODES]
            + [node_port_service('web', WEB, WEB_NODE_PORT)]))
        yield Run(lab, api)


def test_check_mode_over_ssh_shows_the_change_and_changes_nothing(lab):
    before = lab.hosts_state()
    result, recap = lab.sync('--check', '--diff')
    assert '+frontend shop.web.%d' % WEB in result.stdout
    assert result.stdout.count('passes the validate command: Configuration file is valid') == 2
    assert lab.hosts_state() == before
    for host in LOAD_BALANCERS:
        # the lab user logged in with the lab's key, and became root through sudo to run the module
        # with the Python discovered on the host (this test's own Python is not there)
        assert 'Accepted publickey for %s from 192.0.2.1' % lab.lab.user in lab.lab.path(host, '/run/sshd.log').read_text()
        sudo = lab.lab.path(host, '/run/sudo.log').read_text()
        assert re.search(r'%s : .*USER=root ; COMMAND=/bin/sh -c \'?echo BECOME-SUCCESS-\w+ ; /usr/bin/python3[.0-9]* '
                         r'/home/%s/\.ansible/tmp/' % (lab.lab.user, lab.lab.user), ' '.join(sudo.split())), sudo
        assert sys.executable not in sudo


def test_a_real_run_over_ssh_converges_both_load_balancers(lab):
    result, recap = lab.apply()
    for host in LOAD_BALANCERS:
        config = lab.lab.path(host, '/etc/haproxy/haproxy.cfg')
        text = config.read_text()
        assert 'frontend shop.web.%d' % WEB in text
        assert '    chroot /var/lib/haproxy\n' in text and '    user haproxy\n' in text
        assert 'stats socket /run/haproxy/admin.sock' in text
        assert (config.stat().st_uid, oct(config.stat().st_mode & 0o777)) == (0, '0o644')
        # the new workers run as haproxy, as Debian's package runs them
        for worker in lab.lab.haproxy(host).workers():
            uids = [line for line in open('/proc/%d/status' % worker) if line.startswith('Uid:')][0].split()[1:]
            assert set(uids) == {str(lab.lab.run(host, ['id', '-u', 'haproxy']).stdout.strip())}
    lab.expect(WEB, WEB_NODE_PORT)


def test_a_second_run_over_ssh_changes_nothing(lab):
    before = lab.hosts_state()
    result, recap = lab.sync()
    assert recap['lb1'] == (0, 0) and recap['lb2'] == (0, 0), result.stdout[-3000:]
    assert lab.hosts_state() == before


def test_the_installed_collection_syncs_over_ssh(lab, tmp_path_factory):
    root = tmp_path_factory.mktemp('ssh-lab-installed')
    env, unused = build_and_install(root)
    lab.api.add_service(node_port_service('store', SHOP, SHOP_NODE_PORT))
    result, recap = lab.apply(playbook='portico.k8s.sync', env=env, cwd=root)
    assert 'TASK [portico.k8s.haproxy_sync : Bring HAProxy on this load balancer to the routing model]' in result.stdout
    for host in LOAD_BALANCERS:
        assert 'frontend shop.store.%d' % SHOP in lab.lab.path(host, '/etc/haproxy/haproxy.cfg').read_text()
    lab.expect(SHOP, SHOP_NODE_PORT)
    lab.expect(WEB, WEB_NODE_PORT)
