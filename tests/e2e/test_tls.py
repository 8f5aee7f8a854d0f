"""End-to-end: TLS termination with certificates from kubernetes.io/tls Secrets.

playbooks/sync.yml reads Services and Secrets from the test API server and drives a real HAProxy
on loopback; real clients (openssl s_client -servername, curl --resolve) check which certificate
is served, which backend answers, the redirect to HTTPS and X-Forwarded-Proto. Stand-in nodePorts
speak plain HTTP and echo the X-Forwarded-Proto they receive.
"""

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support import tls
from tests.support.clients import OPENSSL, s_client, served_certificate, until
from tests.support.haproxy import HAProxy, NodePortServer, free_ports, minimal_config, well_known_ports
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LB = '127.0.0.7'
NODE, NODE_ADDRESS = 'worker-1', '127.0.1.1'
CURL = shutil.which('curl')


def curl(url, host, port, *extra):
    result = subprocess.run([CURL, '-sS', '-k', '--max-time', '3', '--resolve', '%s:%d:%s' % (host, port, LB),
                             *extra, url, '-w', ' status=%{http_code} location=%{redirect_url}'],
                            capture_output=True, text=True, check=False)
    return ' '.join(result.stdout.split())


class Lab:
    """The API server, one load balancer, the stand-in nodePorts, and a way to run the sync."""

    def __init__(self, root, api, proxy):
        self.root, self.api, self.proxy = root, api, proxy
        self.config = root / 'lb' / 'haproxy.cfg'
        self.cert_dir = root / 'lb' / 'certs'
        self.stage_parent = root / 'tmp-controller'
        self.stage_parent.mkdir()

    def sync(self, *args, **extra_env):
        before = self.proxy.state()
        env = dict(sync_env(self.api, None, self.root / 'tmp'), TMPDIR=str(self.stage_parent), **extra_env)
        result = subprocess.run([str(BIN / 'ansible-playbook'), '-i', str(self.root / 'inventory.json'),
                                 'playbooks/sync.yml', *args],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
        return result, before


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if not (CURL and OPENSSL):
        pytest.skip('curl and openssl are needed')
    root = tmp_path_factory.mktemp('tls')
    https, http = well_known_ports([443, 80], LB)
    raw, = free_ports(1, 20000, 29999, [LB])
    np = dict(zip(['shop', 'api', 'raw', 'missing', 'opaque'], free_ports(5, 30000, 32767, [NODE_ADDRESS])))
    certs = {'shop': tls.certificate(['shop.example.com'], kind='rsa', chain=True),
             'api': tls.certificate(['api.example.com', '*.api.example.com']),
             'raw': tls.certificate(['raw.example.com'])}

    def svc(name, port, created, annotations):
        return objects.service(name, 'web', type='NodePort', created=created, annotations=annotations,
                               ports=[objects.service_port(port, name='main', node_port=np[name])])

    cluster = [
        objects.node(NODE, internal_ips=NODE_ADDRESS),
        svc('shop', 8080, '2026-01-01T00:00:00Z', {
            'portico.io/mode': 'http', 'portico.io/hosts': 'shop.example.com', 'portico.io/tls-secret': 'shop-tls',
            'portico.io/frontend-port': str(https), 'portico.io/tls-redirect-port': str(http)}),
        svc('api', 8080, '2026-01-02T00:00:00Z', {
            'portico.io/mode': 'http', 'portico.io/hosts': 'api.example.com', 'portico.io/tls-secret': 'api-tls',
            'portico.io/frontend-port': str(https)}),
        # TLS offload for a TCP service: no hosts, a port of its own
        svc('raw', raw, '2026-01-01T00:00:00Z', {'portico.io/tls-secret': 'raw-tls'}),
        svc('missing', 8081, '2026-01-01T00:00:00Z', {'portico.io/tls-secret': 'nope'}),
        svc('opaque', 8082, '2026-01-01T00:00:00Z', {'portico.io/tls-secret': 'opaque'}),
        objects.tls_secret('shop-tls', 'web', cert_pem=certs['shop'][0], key_pem=certs['shop'][1]),
        objects.tls_secret('api-tls', 'web', cert_pem=certs['api'][0], key_pem=certs['api'][1]),
        objects.tls_secret('raw-tls', 'web', cert_pem=certs['raw'][0], key_pem=certs['raw'][1]),
        objects.secret('opaque', 'web', data={'tls.crt': certs['raw'][0], 'tls.key': certs['raw'][1]}),
    ]
    with FakeKubeAPI(root / 'api-certs') as api, contextlib.ExitStack() as stack:
        for name in ('shop', 'api', 'raw'):
            stack.enter_context(NodePortServer(NODE, NODE_ADDRESS, np[name], echo='X-Forwarded-Proto'))
        api.load_list(objects.cluster_list(cluster))
        (root / 'lb').mkdir()
        config = root / 'lb' / 'haproxy.cfg'
        config.write_text(minimal_config(root / 'lb' / 'admin.sock'))
        proxy = stack.enter_context(HAProxy(config, root / 'run' / 'lb.pid'))
        hosts = {'lb': load_balancer(root / 'lb', LB, proxy.master_pid,
                                     haproxy_sync_cert_dir=str(root / 'lb' / 'certs'))}
        (root / 'inventory.json').write_text(json.dumps(inventory(hosts, root)))
        this = Lab(root, api, proxy)
        this.ports, this.np, this.certs = {'https': https, 'http': http, 'raw': raw}, np, certs
        check, dummy = this.sync('--check', '--diff')
        this.check_output = check.stdout + check.stderr
        assert check.returncode == 0, this.check_output
        result, before = this.sync()
        assert result.returncode == 0, result.stdout + result.stderr
        proxy.wait_reloaded(before)
        this.first_output = result.stdout + result.stderr
        yield this


def test_each_host_gets_the_certificate_from_its_secret(lab):
    port = lab.ports['https']
    for name, host in (('shop', 'shop.example.com'), ('api', 'api.example.com')):
        served = served_certificate(LB, port, host)
        assert served == lab.certs[name][2]
        assert 'CN = %s' % host in until(lambda: s_client(LB, port, host), 'CN = %s' % host)
    # the chain of the shop Secret is sent too
    assert 'i:CN = Portico test CA' in s_client(LB, port, 'shop.example.com')
    # no matching SNI: the oldest service's certificate is the default
    assert served_certificate(LB, port, 'other.example.com') == lab.certs['shop'][2]


def test_requests_are_routed_by_host_and_told_they_came_over_https(lab):
    port, np = lab.ports['https'], lab.np
    answer = curl('https://shop.example.com:%d/' % port, 'shop.example.com', port)
    assert answer.startswith('node=worker-1 port=%d X-Forwarded-Proto=https status=200' % np['shop'])
    # a client's own X-Forwarded-Proto is replaced, not passed on
    spoofed = curl('https://api.example.com:%d/' % port, 'api.example.com', port, '-H', 'X-Forwarded-Proto: http')
    assert spoofed.startswith('node=worker-1 port=%d X-Forwarded-Proto=https status=200' % np['api'])
    assert 'status=503' in curl('https://nobody.example.com:%d/' % port, 'nobody.example.com', port)


def test_plain_http_is_redirected_to_https(lab):
    port = lab.ports['http']
    answer = curl('http://shop.example.com:%d/cart?item=1' % port, 'shop.example.com', port)
    https = '' if lab.ports['https'] == 443 else ':%d' % lab.ports['https']
    assert 'status=308 location=https://shop.example.com%s/cart?item=1' % https in answer
    # only the hosts of the service that asked for it
    assert 'status=503' in curl('http://api.example.com:%d/' % port, 'api.example.com', port)


def test_a_tcp_service_gets_tls_offload(lab):
    port = lab.ports['raw']
    assert served_certificate(LB, port, 'raw.example.com') == lab.certs['raw'][2]
    answer = curl('https://raw.example.com:%d/' % port, 'raw.example.com', port)
    # mode tcp: HAProxy decrypts and passes the bytes on, it adds no header
    assert answer.startswith('node=worker-1 port=%d X-Forwarded-Proto=None status=200' % lab.np['raw'])


def test_a_missing_or_wrong_secret_excludes_only_its_service(lab):
    output = lab.first_output
    assert 'web/missing all ports: annotation portico.io/tls-secret: Secret web/nope not found' in output
    assert "web/opaque all ports: annotation portico.io/tls-secret: Secret web/opaque is of type 'Opaque'" in output
    config = lab.config.read_text()
    assert 'web.missing' not in config and 'web.opaque' not in config


def secrets_on_disk(lab):
    """The Secret each certificate file on the load balancer belongs to (files are <ns>_<secret>.<version>.pem)."""
    names = sorted(os.listdir(lab.cert_dir))
    assert all(re.match(r'\Aweb_[a-z-]+\.[0-9a-f]{12}\.pem\Z', name) for name in names), names
    return [name.split('.')[0] for name in names]


def test_certificates_are_private_on_disk_and_never_printed(lab):
    assert stat.S_IMODE(os.stat(lab.cert_dir).st_mode) == 0o700
    files = sorted(os.listdir(lab.cert_dir))
    assert secrets_on_disk(lab) == ['web_api-tls', 'web_raw-tls', 'web_shop-tls']
    for name in files:
        assert stat.S_IMODE(os.stat(lab.cert_dir / name).st_mode) == 0o600
    key_lines = [line for name in ('shop', 'api', 'raw') for line in lab.certs[name][1].decode().splitlines()[1:-1]]
    for output in (lab.check_output, lab.first_output):
        assert 'PRIVATE KEY' not in output
        assert not any(line in output for line in key_lines)
    # the controller's copy is gone after the run
    assert list(lab.stage_parent.iterdir()) == []


def test_a_renewed_certificate_is_served_after_the_next_sync_and_keys_stay_hidden(lab):
    new_cert, new_key, new_leaf = tls.certificate(['api.example.com'])
    lab.api.apply(objects.tls_secret('api-tls', 'web', cert_pem=new_cert, key_pem=new_key))
    old_files = sorted(os.listdir(lab.cert_dir))
    check, dummy = lab.sync('--check', '--diff', '-vvv')
    assert check.returncode == 0, check.stdout + check.stderr
    assert 'New or renewed certificates: web/api-tls' in check.stdout
    for line in new_key.decode().splitlines()[1:-1]:
        assert line not in check.stdout + check.stderr
    assert served_certificate(LB, lab.ports['https'], 'api.example.com') == lab.certs['api'][2]
    assert sorted(os.listdir(lab.cert_dir)) == old_files
    result, before = lab.sync()
    assert result.returncode == 0, result.stdout + result.stderr
    # a new file for the new version: haproxy.cfg names it, so haproxy -c checked it; the old one is gone
    new_files = sorted(os.listdir(lab.cert_dir))
    assert secrets_on_disk(lab) == ['web_api-tls', 'web_raw-tls', 'web_shop-tls'] and new_files != old_files
    assert [f for f in new_files if f.startswith('web_api-tls.')][0] in lab.config.read_text()
    lab.proxy.wait_reloaded(before)
    assert until(lambda: 'ok' if served_certificate(LB, lab.ports['https'], 'api.example.com') == new_leaf else 'old',
                 'ok') == 'ok'
    lab.certs['api'] = (new_cert, new_key, new_leaf)


def test_a_certificate_no_longer_used_is_removed(lab):
    # one left behind by a configuration haproxy -c refused, and one of the operator's own
    (lab.cert_dir / 'web_refused-tls.0123456789ab.pem').write_text('left behind')
    (lab.cert_dir / 'operators-own.pem').write_text('not ours')
    lab.api.delete('services', 'raw', 'web')
    result, before = lab.sync()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (lab.cert_dir / 'operators-own.pem').read_text() == 'not ours'
    (lab.cert_dir / 'operators-own.pem').unlink()
    assert secrets_on_disk(lab) == ['web_api-tls', 'web_shop-tls']
    assert 'web_raw-tls' not in lab.config.read_text()
    # a second run changes nothing and reloads nothing
    again, before = lab.sync()
    assert again.returncode == 0 and lab.proxy.state() == before
    assert re.search(r'^lb\s+: ok=\d+\s+changed=0 ', again.stdout, re.M), again.stdout


def test_certificates_are_never_sent_through_a_file_on_the_load_balancer(lab):
    # Keeping remote files turns pipelining off: the module's arguments would rest in a file there.
    new_cert, new_key, new_leaf = tls.certificate(['api.example.com'])
    lab.api.apply(objects.tls_secret('api-tls', 'web', cert_pem=new_cert, key_pem=new_key))
    files, config = sorted(os.listdir(lab.cert_dir)), lab.config.read_bytes()
    result, before = lab.sync(ANSIBLE_KEEP_REMOTE_FILES='1')
    assert result.returncode != 0
    assert 'lb: the TLS certificates can only be sent with pipelining' in result.stdout, result.stdout[-2000:]
    assert sorted(os.listdir(lab.cert_dir)) == files and lab.config.read_bytes() == config
    assert lab.proxy.state() == before
    kept = [p for p in (lab.root / 'tmp').rglob('*') if p.is_file()]
    assert not [p for p in kept if b'PRIVATE KEY' in p.read_bytes()]
    result, before = lab.sync()
    assert result.returncode == 0, result.stdout + result.stderr
    lab.certs['api'] = (new_cert, new_key, new_leaf)


def test_the_key_material_matches_what_haproxy_loads(lab):
    shop, = [name for name in os.listdir(lab.cert_dir) if name.startswith('web_shop-tls.')]
    bundle = (lab.cert_dir / shop).read_bytes()
    key = serialization.load_pem_private_key(bundle[bundle.index(b'-----BEGIN PRIVATE KEY'):], password=None)
    assert key.public_key().public_numbers() == lab.certs['shop'][2].public_key().public_numbers()
