"""End-to-end: what a hostile tenant (or node) writes into the cluster never takes over a load balancer.

playbooks/sync.yml reads the cluster from the test API server over HTTPS with a token and drives a
real HAProxy with the role's default process settings (master-worker, the master as root, workers
as the haproxy user in a chroot). The cluster holds every attack that was reported against 0.1.0:

- a Service annotation ``bind-address`` whose IPv6 zone id carries a ``program`` section (a command
  the master would run as root), and a Node address doing the same;
- a zone id ending in ``#``, which made HAProxy bind the victim's port (a traffic hijack);
- certificates that name another tenant's host only in their common name;
- TLS Secrets built to make the sync slow (unterminated, oversized, many PEM blocks).

Each is left out with its reason, nothing runs, nothing listens where it should not, and the
others are served. A run killed half-way leaves no key material on the controller.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support import tls
from tests.support.clients import served_certificate, until
from tests.support.haproxy import HAProxy, NodePortServer, free_ports, minimal_config, spread
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

pytestmark = pytest.mark.e2e

LB = '127.0.0.12'
NODE, NODE_ADDRESS = 'worker-1', '127.0.2.1'
BASE = REPO / 'roles' / 'haproxy_sync' / 'templates' / 'base.cfg.j2'


def hexpath(path):
    """A path written with HAProxy's \\x2f escapes: Python's ipaddress refuses "/" in a zone id."""
    return str(path).replace('/', '\\x2f')


def program(name, marker):
    """Configuration text that makes HAProxy's master run a command, as an injected zone id would carry it."""
    return '\nprogram %s\n    command touch %s\n' % (name, hexpath(marker))


def listeners():
    """Every listening TCP socket of this network namespace, as 'address:port' (IPv6 in brackets)."""
    found = set()
    for table, family in (('/proc/net/tcp', 4), ('/proc/net/tcp6', 6)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != '0A':  # LISTEN
                continue
            address, port = local.split(':')
            raw = bytes.fromhex(address)
            if family == 4:
                text = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                text = '[%s]' % socket.inet_ntop(socket.AF_INET6, b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.add('%s:%d' % (text, int(port, 16)))
    return found


class Lab:
    def __init__(self, root, api, proxy, ports):
        self.root, self.api, self.proxy, self.ports = root, api, proxy, ports
        self.config = root / 'lb' / 'haproxy.cfg'
        self.cert_dir = root / 'lb' / 'certs'
        self.controller_tmp = root / 'controller-tmp'
        self.local_tmp = root / 'controller-ansible-tmp'
        for path in (self.controller_tmp, self.local_tmp, root / 'lb-tmp'):
            path.mkdir()

    def command(self, *args):
        env = dict(sync_env(self.api, None, None), TMPDIR=str(self.controller_tmp),
                   ANSIBLE_LOCAL_TEMP=str(self.local_tmp), ANSIBLE_REMOTE_TEMP=str(self.root / 'lb-tmp'))
        return [str(BIN / 'ansible-playbook'), '-i', str(self.root / 'inventory.json'), 'playbooks/sync.yml',
                *args], env

    def sync(self, *args):
        command, env = self.command(*args)
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('attacks')
    web, hijack, cmd, late, site = free_ports(5, 20000, 29999, [LB])
    names = ['web', 'hijack', 'cmd', 'site', 'evil-site', 'early', 'late', 'bomb0', 'bomb1', 'bomb2', 'bomb3']
    np = dict(zip(names, free_ports(len(names), 30000, 32767, [NODE_ADDRESS])))
    certs = {'victim': tls.certificate(['victim.example.com']),
             # the attacker's certificate names the victim's host only in its common name
             'attacker': tls.certificate(['attacker.example.com'], cn='victim.example.com'),
             'early': tls.certificate(['early.example.com'], cn='late.example.com'),
             'late': tls.certificate(['late.example.com'])}
    markers = {'annotation': root / 'pwned-by-annotation', 'node': root / 'pwned-by-node'}

    def svc(namespace, name, port, node_port, created, **annotations):
        return objects.service(name, namespace, type='NodePort', created=created,
                               annotations=dict(('portico.io/' + k.replace('_', '-'), v) for k, v in annotations.items()),
                               ports=[objects.service_port(port, name='main', node_port=node_port)])

    def tls_site(namespace, name, node_port, created, host, secret, port):
        return svc(namespace, name, 443, node_port, created, mode='http', hosts=host, tls_secret=secret,
                   frontend_port=str(port))

    block = certs['victim'][0]
    cluster = [
        objects.node(NODE, internal_ips=NODE_ADDRESS),
        # a node whose status carries a program section in a zone id (anyone who can write a Node's status)
        objects.node('evil-node', internal_ips='::1%x]:1 check#' + program('pwn-node', markers['node'])
                     + 'backend evil-node-tail\n    mode tcp#'),
        svc('shop', 'web', web, np['web'], '2026-01-01T00:00:00Z'),
        # command execution through an annotation: "::1:1" reads as address ::1 port 1 before the "#"
        svc('evil', 'cmd', cmd, np['cmd'], '2026-01-01T00:00:00Z',
            bind_address='::1:1%x#' + program('pwn-annotation', markers['annotation'])
            + 'frontend evil-tail\n    mode tcp#'),
        # the hijack: HAProxy read "::ffff:7f00:c:<port>%x" as [::ffff:127.0.0.12] on the victim's port
        svc('evil', 'hijack', hijack, np['hijack'], '2026-01-01T00:00:00Z',
            bind_address='::ffff:7f00:c:%d%%x#' % web),
        # certificates: a younger attacker whose CN names an older victim's host, and the reverse
        tls_site('shop', 'site', np['site'], '2026-01-01T00:00:00Z', 'victim.example.com', 'victim-tls', site),
        tls_site('evil', 'site', np['evil-site'], '2026-02-01T00:00:00Z', 'attacker.example.com', 'attacker-tls', site),
        tls_site('evil', 'early', np['early'], '2025-01-01T00:00:00Z', 'early.example.com', 'early-tls', late),
        tls_site('shop', 'late', np['late'], '2026-03-01T00:00:00Z', 'late.example.com', 'late-tls', late),
        objects.tls_secret('victim-tls', 'shop', cert_pem=certs['victim'][0], key_pem=certs['victim'][1]),
        objects.tls_secret('attacker-tls', 'evil', cert_pem=certs['attacker'][0], key_pem=certs['attacker'][1]),
        objects.tls_secret('early-tls', 'evil', cert_pem=certs['early'][0], key_pem=certs['early'][1]),
        objects.tls_secret('late-tls', 'shop', cert_pem=certs['late'][0], key_pem=certs['late'][1]),
    ]
    # Secret bombs in several tenants' namespaces
    bombs = {'unterminated': b'-----BEGIN CERTIFICATE-----\n' * 2000,
             'blocks': b'-----BEGIN X-----\nAA==\n-----END X-----\n' * 40 + block,
             'chain': block * 11,
             'oversized': b'-----BEGIN CERTIFICATE-----\n' + b'A' * (900 * 1024)}
    for index, (name, crt) in enumerate(sorted(bombs.items())):
        namespace = 'tenant-%d' % index
        cluster.append(svc(namespace, name, 8443 + index, np['bomb%d' % index], '2026-01-01T00:00:00Z', tls_secret=name))
        cluster.append(objects.tls_secret(name, namespace, cert_pem=crt, key_pem=certs['victim'][1]))

    base = root / 'base.cfg.j2'
    # the built-in base template, letting servers whose address does not resolve start in maintenance
    # (a common operator setting, under which a bad node address once made the master run a command)
    base.write_text(BASE.read_text().replace('    default-server ', '    default-server init-addr last,libc,none '))
    with FakeKubeAPI(root / 'api-certs') as api, contextlib.ExitStack() as stack:
        for name in ('web', 'hijack', 'site', 'late', 'early'):
            stack.enter_context(NodePortServer(NODE, NODE_ADDRESS, np[name]))
        api.load_list(objects.cluster_list(cluster))
        (root / 'lb').mkdir()
        config = root / 'lb' / 'haproxy.cfg'
        config.write_text(minimal_config(root / 'lb' / 'admin.sock'))
        proxy = stack.enter_context(HAProxy(config, root / 'run' / 'lb.pid'))
        hosts = {'lb': load_balancer(root / 'lb', LB, proxy.master_pid, haproxy_sync_cert_dir=str(root / 'lb' / 'certs'),
                                     haproxy_sync_base_template=str(base),
                                     # the role's defaults: workers as haproxy in a chroot, the master as root
                                     haproxy_sync_user='haproxy', haproxy_sync_group='haproxy',
                                     haproxy_sync_chroot='/var/lib/haproxy')}
        (root / 'inventory.json').write_text(json.dumps(inventory(hosts, root)))
        this = Lab(root, api, proxy, {'web': web, 'hijack': hijack, 'cmd': cmd, 'site': site, 'late': late})
        this.np, this.certs, this.markers = np, certs, markers
        before = proxy.state()
        started = time.monotonic()
        this.rc, this.output = this.sync()
        this.seconds = time.monotonic() - started
        (root / 'sync-output.txt').write_text(this.output)
        assert this.rc == 0, this.output
        proxy.wait_reloaded(before)
        yield this


def test_no_injected_command_runs(lab):
    # the master starts programs at start and at every reload: reload once more, then look
    lab.proxy.reload()
    time.sleep(1)
    assert not lab.markers['annotation'].exists() and not lab.markers['node'].exists()
    config = lab.config.read_text()
    for word in ('program', 'command touch', 'evil-tail', 'evil-node'):
        assert word not in config


def reported(output, start, end):
    """Whether a line of the run's summary starts (after its quote) with start and holds end."""
    return any(line.strip().startswith('"' + start) and end in line for line in output.splitlines())


def test_the_attacker_and_the_node_are_left_out_with_the_reason(lab):
    zone = 'has an IPv6 zone id (the \\"%...\\" part), which has no meaning here'
    assert reported(lab.output, "evil/cmd all ports: invalid: annotation portico.io/bind-address: value '::1:1%x#", zone)
    assert reported(lab.output, "evil/hijack all ports: invalid: annotation portico.io/bind-address: value "
                    "'::ffff:7f00:c:%d%%x#'" % lab.ports['web'], zone)
    assert reported(lab.output, "evil-node: no usable address: InternalIP address '::1%x]:1 check#", zone)
    config = lab.config.read_text()
    assert 'evil.cmd' not in config and 'evil.hijack' not in config


def test_the_victims_port_is_the_victims_alone(lab):
    port = lab.ports['web']
    answers = spread(LB, port, requests=40)
    assert answers == {'node=%s port=%d' % (NODE, lab.np['web']): 40}
    bound = listeners()
    assert '%s:%d' % (LB, port) in bound
    assert not any(address.endswith(':%d' % port) for address in bound if address.startswith('[::ffff:'))
    assert not any(address.endswith(':1') for address in bound if address.startswith('[::1]'))


def test_a_common_name_cannot_take_another_tenants_host(lab):
    # the attacker came later: its certificate (CN victim.example.com) is left out, the victim keeps its own
    assert reported(lab.output, 'evil/site 443/TCP: annotation portico.io/tls-secret: the certificate of Secret '
                    'evil/attacker-tls also names host victim.example.com, which port %d routes to the older service '
                    'shop/site' % lab.ports['site'], '')
    assert served_certificate(LB, lab.ports['site'], 'victim.example.com') == lab.certs['victim'][2]
    assert 'evil_attacker-tls' not in lab.config.read_text()
    # the attacker came first: the later service whose host its certificate names is left out, with the reason
    assert reported(lab.output, 'shop/late 443/TCP: annotation portico.io/tls-secret: for host late.example.com on '
                    'port %d HAProxy would serve the certificate of the older service evil/early' % lab.ports['late'], '')
    assert 'shop.late' not in lab.config.read_text()


def test_secret_bombs_are_refused_with_the_reason_and_the_others_are_served(lab):
    for index, (name, reason) in enumerate(sorted({
            'blocks': 'tls.crt holds more than 16 PEM blocks',
            'chain': 'tls.crt holds 11 certificates; a chain of at most 10 is accepted',
            'oversized': 'tls.crt is larger than 64 KiB',
            'unterminated': 'tls.crt has a PEM block "CERTIFICATE" without its END line'}.items())):
        assert reported(lab.output, 'tenant-%d/%s all ports: annotation portico.io/tls-secret: Secret tenant-%d/%s: '
                        % (index, name, index, name), reason.replace('"', '\\"'))
    assert until(lambda: str(spread(LB, lab.ports['web'], requests=3)), 'port=%d' % lab.np['web'])


def key_material(directories, key_lines):
    """Files under directories that hold any line of the key (or a PEM private key at all)."""
    found = []
    for directory in directories:
        # os.walk skips a directory that goes away while it is read (rglob raises)
        for root, dummy, files in os.walk(directory):
            for name in files:
                path = Path(root) / name
                try:
                    data = path.read_bytes()
                except OSError:  # gone meanwhile
                    continue
                if b'PRIVATE KEY' in data or any(line in data for line in key_lines):
                    found.append(str(path))
    return found


def test_no_key_material_touches_the_controller_even_when_a_run_is_killed(lab):
    # a renewal makes the next run install a certificate; the controller's temporary directories
    # are watched the whole time, and the run is killed once the certificate is on the load balancer
    renewed_cert, renewed_key, dummy = tls.certificate(['victim.example.com'])
    lab.api.apply(objects.tls_secret('victim-tls', 'shop', cert_pem=renewed_cert, key_pem=renewed_key))
    key_lines = [line.encode() for line in renewed_key.decode().splitlines()[1:-1]]
    watched = (lab.controller_tmp, lab.local_tmp)
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.extend(key_material(watched, key_lines))
            time.sleep(0.005)
    watcher = threading.Thread(target=watch, daemon=True)
    before = set(os.listdir(lab.cert_dir))
    command, env = lab.command()
    watcher.start()
    run = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while set(os.listdir(lab.cert_dir)) == before and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(os.listdir(lab.cert_dir)) != before, 'the run never installed the renewed certificate'
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        stop.set()
        watcher.join(timeout=10)
    assert seen == [] and key_material(watched, key_lines) == []
    # the lock the killed run held is its own matter (taken away as stale later); leave the host usable
    for lock in lab.config.parent.glob('*.portico-lock'):
        for path in lock.iterdir():
            path.unlink()
        lock.rmdir()
