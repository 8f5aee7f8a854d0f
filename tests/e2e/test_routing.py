"""End-to-end: per-service annotations, ports shared by Host header and by TLS SNI, port conflicts.

playbooks/sync.yml reads the test API server and drives a real HAProxy on loopback; real clients
(curl --resolve, openssl s_client -servername) check which service answers. Stand-in HTTP
NodePorts answer ``node=<name> port=<nodePort>``; stand-in TLS NodePorts present a certificate
whose CN names the service, so the certificate says which backend the SNI reached.
"""

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.clients import OPENSSL, s_client, until
from tests.support.haproxy import HAProxy, free_ports, minimal_config, nodeport_servers, well_known_ports
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LB = '127.0.0.4'
NODE, NODE_ADDRESS = 'worker-1', '127.0.1.1'
CURL = shutil.which('curl')


class TLSServer:
    """A TLS server on a loopback port that presents the certificate of ``name`` and answers ``tls=<name>``."""

    def __init__(self, root, name, port):
        self.name, self.port = name, port
        self.cert, self.key = root / ('%s.crt' % name), root / ('%s.key' % name)
        subprocess.run([OPENSSL, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                        '-nodes', '-keyout', str(self.key), '-out', str(self.cert), '-days', '1',
                        '-subj', '/CN=%s' % name], check=True, capture_output=True)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(self.cert), str(self.key))
        self.sock = socket.create_server((NODE_ADDRESS, port))
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self):
        while not self.stopping.is_set():
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError, ssl.SSLError):
                conn.settimeout(2)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(('tls=%s\n' % self.name).encode())
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


def curl(port, host):
    result = subprocess.run([CURL, '-sS', '--max-time', '3', '--resolve', '%s:%d:%s' % (host, port, LB),
                             'http://%s:%d/' % (host, port), '-w', ' status=%{http_code}'],
                            capture_output=True, text=True, check=False)
    return ' '.join(result.stdout.split())


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if not (CURL and OPENSSL):
        pytest.skip('curl and openssl are needed')
    root = tmp_path_factory.mktemp('routing')
    # the real thing where the tests may bind it: HTTP on 80, TLS on 443
    http_port, tls_port = well_known_ports([80, 443], LB)
    spare, = free_ports(1, 20000, 29999, [LB])
    np = dict(zip(['one', 'two', 'three', 'tls-a', 'tls-b', 'tls-c', 'plain'], free_ports(7, 30000, 32767, [NODE_ADDRESS])))

    def svc(name, port, created, annotations):
        return objects.service(name, 'web', type='NodePort', created=created, annotations=annotations,
                               ports=[objects.service_port(port, name='main', node_port=np[name])])

    cluster = [
        objects.node(NODE, internal_ips=NODE_ADDRESS),
        svc('one', http_port, '2026-01-01T00:00:00Z', {'portico.io/mode': 'http', 'portico.io/hosts': 'one.example.com'}),
        svc('two', http_port, '2026-01-02T00:00:00Z', {'portico.io/mode': 'http', 'portico.io/hosts': 'Two.example.com,*.apps.example.com',
                                                       'portico.io/check': 'http', 'portico.io/check-path': '/healthz'}),
        # the passthrough port sends clients whose SNI names no service to tls-c
        svc('tls-c', tls_port, '2026-01-02T12:00:00Z', {'portico.io/hosts': 'c.example.com', 'portico.io/host-default': 'true'}),
        # younger and claims a host that "one" already routes: excluded, "one" keeps it
        svc('three', http_port, '2026-01-03T00:00:00Z', {'portico.io/mode': 'http', 'portico.io/hosts': 'one.example.com'}),
        svc('tls-a', tls_port, '2026-01-01T00:00:00Z', {'portico.io/hosts': 'a.example.com'}),
        svc('tls-b', tls_port, '2026-01-02T00:00:00Z', {'portico.io/hosts': 'b.example.com', 'portico.io/timeout-tunnel': '1h'}),
        # a plain TCP service that wants the HTTP port: with allocate it moves to the spare port
        svc('plain', http_port, '2026-01-04T00:00:00Z', {'portico.io/balance': 'leastconn'}),
        # a hostile value: the service is excluded, the value never reaches haproxy.cfg
        objects.service('evil', 'web', type='NodePort', annotations={'portico.io/timeout-server': '1s\nlisten x'},
                        ports=[objects.service_port(spare, name='main', node_port=np['plain'])]),
    ]
    with FakeKubeAPI(root / 'certs') as api, \
            nodeport_servers({NODE: NODE_ADDRESS}, [np['one'], np['two'], np['three'], np['plain']]), \
            TLSServer(root, 'a.example.com', np['tls-a']), TLSServer(root, 'b.example.com', np['tls-b']), \
            TLSServer(root, 'c.example.com', np['tls-c']), \
            contextlib.ExitStack() as stack:
        api.load_list(objects.cluster_list(cluster))
        (root / 'lb').mkdir()
        config = root / 'lb' / 'haproxy.cfg'
        config.write_text(minimal_config(root / 'lb' / 'admin.sock'))
        proxy = stack.enter_context(HAProxy(config, root / 'run' / 'lb.pid'))
        hosts = {'lb': load_balancer(root / 'lb', LB, proxy.master_pid)}
        (root / 'inventory.json').write_text(json.dumps(inventory(
            hosts, root, haproxy_sync_port_conflict='allocate', haproxy_sync_allocate_range='%d-%d' % (spare, spare))))
        before = proxy.state()
        result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', str(root / 'inventory.json'), 'playbooks/sync.yml'],
                                cwd=REPO, env=sync_env(api, None, root / 'tmp'), capture_output=True, text=True,
                                timeout=180, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        proxy.wait_reloaded(before)
        yield {'config': config.read_text(), 'output': result.stdout, 'http': http_port, 'tls': tls_port,
               'spare': spare, 'np': np}


def test_two_http_services_share_a_port_by_host(lab):
    port, np = lab['http'], lab['np']
    assert 'frontend hosts.%d' % port in lab['config']
    assert until(lambda: curl(port, 'one.example.com'), 'port=%d' % np['one']).endswith('status=200')
    assert 'node=worker-1 port=%d status=200' % np['two'] == curl(port, 'TWO.example.com')
    assert 'port=%d' % np['two'] in curl(port, 'x.apps.example.com')
    assert curl(port, 'other.example.com').endswith('status=503')


def test_two_tls_services_share_a_port_by_sni(lab):
    assert 'frontend sni.%d' % lab['tls'] in lab['config']
    for name in ('a.example.com', 'b.example.com'):
        # the certificate each stand-in presents names it: the SNI reached that backend, TLS untouched
        answer = until(lambda: s_client(LB, lab['tls'], name), 's:CN = %s' % name)
        assert 's:CN = %s' % name in answer
    # a name no service lists goes to the host-default service
    assert 's:CN = c.example.com' in s_client(LB, lab['tls'], 'z.example.com')


def test_conflicts_give_the_documented_winner(lab):
    # the younger claimant of one.example.com is reported, the older keeps it
    assert 'host one.example.com on frontend port %d is already routed to the older service web/one' % lab['http'] in lab['output']
    assert 'web.three' not in lab['config']
    # the plain TCP service lost the HTTP port and got the only port of the allocate range
    assert 'allocated frontend port %d' % lab['spare'] in lab['output']
    assert 'frontend web.plain.%d' % lab['http'] in lab['config'] and ':%d\n' % lab['spare'] in lab['config']
    assert until(lambda: curl(lab['spare'], 'any.example.com'), 'port=%d' % lab['np']['plain']).endswith('status=200')


def test_settings_are_printed_and_hostile_values_are_not(lab):
    config = lab['config']
    assert 'option httpchk GET /healthz' in config and 'timeout tunnel 1h' in config and 'balance leastconn' in config
    assert 'listen x' not in config and 'web.evil' not in config
    assert "annotation portico.io/timeout-server: '1s\\\\nlisten x'" in lab['output'] or 'portico.io/timeout-server' in lab['output']
