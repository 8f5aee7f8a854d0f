"""A lab of real hosts on this machine: network and mount namespaces, a bridge, sshd, sudo and HAProxy.

``with Lab(hosts=['lb1', 'lb2'], clients=['client'], nodes=['worker-1']) as lab:`` builds it and
removes all of it on exit, also when the test fails or is interrupted.

The network, all of it in 192.0.2.0/24 and 2001:db8::/64 (documentation ranges), with no route out:

    controller  lab0 192.0.2.1   (2001:db8::1)   ──┐
    lb1         eth0 192.0.2.11  (2001:db8::11)  ──┤   br0, a bridge in a namespace of its
    lb2         eth0 192.0.2.12  ...             ──┤   own (no address on it, so nothing
    client      eth0 192.0.2.51  ...             ──┤   routes through it)
    worker-1    eth0 192.0.2.101 ...             ──┘

The controller is a network namespace of its own too: the thread that enters the lab moves into it
until the lab is left (setns), so what the test starts meanwhile (ansible-playbook, the test API
server, its own sockets) is in the lab's network, on its own loopback, whether pytest runs in a
worker's namespace (scripts/netns-python) or in the machine's network (where 192.0.2.0/24 may be
in use). Start the test API server inside ``with Lab(...)``; what was listening before is on the
other side. Other threads stay where they were.

Floating addresses for the tests (a VIP) are 192.0.2.200 and up: :meth:`Lab.floating_address`.

A *host* (a load balancer) is a network namespace plus a long-lived process (``unshare --mount
--uts``, then ``sleep infinity``) that holds its own mount namespace and host name; everything on
the host runs inside both (``nsenter``). In its mount namespace, directories of its own under
:attr:`Lab.root` are bind-mounted over ``/run``, ``/etc/haproxy``, ``/var/lib/haproxy``,
``/etc/keepalived``, ``/etc/ssh``, ``/etc/sudoers.d`` and ``/home``, and edited copies of
``/etc/passwd``, ``/etc/shadow``, ``/etc/group``, ``/etc/gshadow`` and ``/etc/hosts`` over
those: the unprivileged user ``portico`` (key login only, ``sudo`` without a password, each
``sudo`` logged in ``/run/sudo.log``) exists on the lab's hosts and nowhere else.
:meth:`Lab.path` gives where a host's file is seen from here.

Each host runs Debian's ``sshd`` (``/etc/ssh/sshd_config`` of its own, listening on its lab
addresses only, host key made for the lab, log in ``/run/sshd.log``) and HAProxy as Debian's
systemd unit starts it: ``haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S
/run/haproxy-master.sock``, first with the role's built-in base template (``user haproxy``,
``chroot /var/lib/haproxy``, ``stats socket /run/haproxy/admin.sock``, master-worker). There
is no systemd, so the inventory :meth:`Lab.inventory_vars` gives sets
``haproxy_sync_reload_command`` to :data:`HAPROXY_RELOAD_COMMAND`, which sends USR2 to the
master as the unit's ``ExecReload`` does; the rest of the role's Debian defaults stay.
keepalived (Debian's) runs when a test starts it, as its unit does (``keepalived --dont-fork``,
``/etc/keepalived/keepalived.conf``, pidfiles in the host's ``/run``);
:data:`KEEPALIVED_RELOAD_COMMAND` is its ``ExecReload``.

Clients and nodes are network namespaces only. Node stand-ins (:meth:`Lab.node_server`) and the
clients' requests (:meth:`Lab.client_request`, :meth:`Lab.load`) run in this process, on sockets
made in those namespaces (a thread that joins one with setns makes them), so a test counts them
directly.

The lab needs root (``ip netns``, mounts). Names are unique per process (``portico-lab-<worker>-
p<pid>s<start time>-<n>-<host>``), as ``/run/netns`` and the mount table are shared by parallel
test workers; a lab starts by removing what a killed earlier run left, once its process is
provably gone (no such pid, or a pid now with another start time).
"""

import contextlib
import ctypes
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from tests.support.haproxy import HAPROXY, HAProxy, HAProxyError, NodePortServer, http_get, is_alive

REPO = Path(__file__).resolve().parents[2]
PREFIX = 'portico-lab-'
USER = 'portico'
CONTROLLER = '192.0.2.1'
INTERFACE = 'eth0'
CONTROLLER_INTERFACE = 'lab0'
# As Debian's units (haproxy.service, keepalived.service) reload; there is no systemd in the lab.
HAPROXY_RELOAD_COMMAND = '/bin/sh -c \'kill -USR2 "$(cat /run/haproxy.pid)"\''
KEEPALIVED_RELOAD_COMMAND = '/bin/sh -c \'kill -HUP "$(cat /run/keepalived.pid)"\''
# the environment systemd gives a service, and a root shell on the host
HOST_ENV = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8'}
TOOLS = {'ip': 'iproute2', 'nsenter': 'util-linux', 'unshare': 'util-linux', 'sshd': 'openssh-server',
         'ssh-keygen': 'openssh-client', 'ssh': 'openssh-client', 'sudo': 'sudo', 'keepalived': 'keepalived',
         'haproxy': 'haproxy'}
_NAME = re.compile(r'^[a-z][a-z0-9-]{0,14}$')
_OWNER = re.compile(r'^' + re.escape(PREFIX) + r'[A-Za-z0-9]+-p(?P<pid>\d+)s(?P<start>\d+)-')
_CLONE_NEWNET = 0x40000000
_sequence = itertools.count(1)
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """The lab could not be built or a process in it did not start."""


class LabUnavailable(LabError):
    """This machine cannot run the lab (not root, or a tool is missing); the message says what to do."""


def _which(tool):
    return shutil.which(tool) or shutil.which(tool, path='/usr/sbin:/sbin:/usr/bin:/bin')


def check_available():
    """Raise :class:`LabUnavailable` unless this process can build a lab."""
    if os.geteuid() != 0:
        raise LabUnavailable('the lab needs root (ip netns, bind mounts, sshd); run the tests as root')
    missing = sorted({package for tool, package in TOOLS.items() if not _which(tool)})
    if missing:
        raise LabUnavailable('the lab needs %s: scripts/setup.sh installs them' % ', '.join(missing))


def _start_time(pid):
    """The start time of a live process (clock ticks since boot), or None when there is none (or a zombie)."""
    try:
        fields = Path('/proc/%d/stat' % pid).read_text().rsplit(')', 1)[1].split()
        return None if fields[0] in ('Z', 'X') else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _setns_fd(fd):
    if hasattr(os, 'setns'):
        os.setns(fd, os.CLONE_NEWNET)
    elif _libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, 'setns: %s' % os.strerror(code))


def _setns(path):
    """Move the calling thread into the network namespace at path (other threads stay where they are)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns_fd(fd)
    finally:
        os.close(fd)


def in_netns(path, function, *args, **kwargs):
    """Call function in a thread of its own inside the network namespace at path; returns its result.

    Sockets made there stay in that namespace wherever they are used after.
    """
    outcome = {}

    def call():
        try:
            _setns(path)
            outcome['value'] = function(*args, **kwargs)
        except BaseException as exc:  # pylint: disable=broad-except  # handed back to the caller
            outcome['error'] = exc

    thread = threading.Thread(target=call, name='netns %s' % os.path.basename(path), daemon=True)
    thread.start()
    thread.join()
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']


def _netns_inode(name):
    try:
        return os.stat('/run/netns/%s' % name).st_ino
    except FileNotFoundError:
        return None


def processes_in(name):
    """Pids of the processes whose network namespace is /run/netns/name (as ``ip netns pids`` finds them)."""
    inode = _netns_inode(name)
    pids = set()
    if inode is None:
        return pids
    for entry in os.listdir('/proc'):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if os.stat('/proc/%s/ns/net' % entry).st_ino == inode:
                    pids.add(int(entry))
    return pids


def _end_processes(names, timeout=5.0):
    """SIGTERM, then SIGKILL, every process in these network namespaces."""
    pids = set()
    for name in names:
        pids |= processes_in(name)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(is_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = {pid for pid in pids if is_alive(pid)}
        if not pids:
            return
    raise LabError('processes %s in %s did not end' % (sorted(pids), ', '.join(names)))


def _ip(*args, check=True):
    result = subprocess.run([_which('ip'), *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise LabError('ip %s: %s' % (' '.join(args), (result.stderr or result.stdout).strip()))
    return result


def _delete_netns(name):
    _ip('netns', 'delete', name, check=False)


def remove_leftovers():
    """Remove the namespaces, processes and directories of labs whose process is provably gone."""
    with contextlib.suppress(FileNotFoundError):
        dead = {}
        for name in os.listdir('/run/netns'):
            owner = _OWNER.match(name)
            if owner and _start_time(int(owner['pid'])) != int(owner['start']):
                dead.setdefault(owner.group(0), []).append(name)
        for names in dead.values():
            _end_processes(names)
            for name in names:
                _delete_netns(name)
    for entry in Path(tempfile.gettempdir()).glob(PREFIX + '*'):
        owner = _OWNER.match(entry.name)
        if owner and entry.is_dir() and _start_time(int(owner['pid'])) != int(owner['start']):
            shutil.rmtree(entry, ignore_errors=True)


@dataclass(frozen=True)
class Member:
    """One namespace of the lab: a host (sshd, HAProxy), a client or a node."""

    name: str
    kind: str
    index: int
    netns: str

    @property
    def address(self):
        return '192.0.2.%d' % self.index

    @property
    def address6(self):
        return '2001:db8::%d' % self.index


class LabHAProxy(HAProxy):
    """HAProxy on a lab host, started as Debian's unit starts it; seen from here through the host's /run."""

    def __init__(self, lab, host):
        self.lab, self.host, self.process = lab, host, None
        super().__init__(lab.path(host, '/etc/haproxy/haproxy.cfg'), lab.path(host, '/run/haproxy.pid'),
                         log=lab.root / host / 'haproxy.log')

    def start(self, timeout=10.0):
        if self.is_running():
            raise HAProxyError('HAProxy already runs on %s' % self.host)
        self.pidfile.unlink(missing_ok=True)
        with self.log.open('ab') as log:
            # -Ws: master-worker in the foreground (systemd's Type=notify), as the unit runs it
            self.process = self.lab.popen(self.host, [HAPROXY, '-Ws', '-f', '/etc/haproxy/haproxy.cfg',
                                                      '-p', '/run/haproxy.pid', '-S', '/run/haproxy-master.sock'],
                                          stdout=log, stderr=log)

        def started():
            if self.process.poll() is not None:
                raise HAProxyError('HAProxy on %s exited with %d%s' % (self.host, self.process.returncode,
                                                                       self._log_tail()))
            return self.is_running() and self.workers()
        self._wait(started, timeout, 'start')
        return self.state()

    def stop(self, timeout=10.0):
        super().stop(timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
            self.process = None


class Load:
    """Requests sent one after the other from a client, each on a new connection, until stopped.

    ``results`` holds ``(monotonic time, ok, body or error)`` per request; a request is ok when it
    got a 200 answer.
    """

    def __init__(self, netns, address, port, path='/', timeout=1.0, pause=0.0):
        self.netns, self.address, self.port, self.path = netns, address, port, path
        self.timeout, self.pause = timeout, pause
        self.results = []
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    def _run(self):
        try:
            _setns(self.netns)
        except OSError as exc:
            self.error = exc
            return
        while not self._stop.is_set():
            try:
                status, body = http_get(self.address, self.port, self.path, timeout=self.timeout)
                self.results.append((time.monotonic(), status == 200, body if status == 200 else 'status %d' % status))
            except (OSError, http.client.HTTPException) as exc:
                self.results.append((time.monotonic(), False, 'error: %s' % type(exc).__name__))
            if self.pause:
                self._stop.wait(self.pause)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, name='load %s:%d' % (self.address, self.port), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        if self.error is not None:
            raise LabError('the load did not start: %s' % self.error)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def failures(self):
        return [result for result in list(self.results) if not result[1]]

    def wait_for(self, count, timeout=10.0):
        """Wait until at least count more requests than now have finished."""
        target = len(self.results) + count
        deadline = time.monotonic() + timeout
        while len(self.results) < target:
            if time.monotonic() > deadline:
                raise LabError('the load on %s:%d made %d of %d requests' % (self.address, self.port,
                                                                             len(self.results), target))
            time.sleep(0.01)


class Lab:
    """Hosts reached over SSH (sshd, sudo, HAProxy, keepalived), clients and nodes, on a bridge of their own."""

    def __init__(self, hosts=(), clients=(), nodes=(), user=USER):
        names = [*hosts, *clients, *nodes]
        bad = [name for name in names if not _NAME.match(name)]
        if bad or len(set(names)) != len(names):
            raise ValueError('lab names must be distinct host names of up to 15 characters: %s' % names)
        if len(hosts) > 39 or len(clients) > 49 or len(nodes) > 49:
            raise ValueError('at most 39 hosts, 49 clients and 49 nodes')
        self.user = user
        self.hosts, self.clients, self.nodes = tuple(hosts), tuple(clients), tuple(nodes)
        self._specs = [(name, 'host', 11 + i) for i, name in enumerate(hosts)] + \
            [(name, 'client', 51 + i) for i, name in enumerate(clients)] + \
            [(name, 'node', 101 + i) for i, name in enumerate(nodes)]
        self.members = {}
        self.root = None
        self.switch = self.controller = None
        self._home = self._thread = None
        self.uid = None
        self._mounts = {}
        self._holders = {}
        self._haproxy = {}
        self._keepalived = {}
        self._stack = None

    # -- building and removing ------------------------------------------------------------------

    def __enter__(self):
        check_available()
        remove_leftovers()
        self._stack = contextlib.ExitStack()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _build(self):
        worker = re.sub(r'[^A-Za-z0-9]', '', os.environ.get('PYTEST_XDIST_WORKER', 'main')) or 'main'
        lab_id = '%s%s-p%ds%d-%d' % (PREFIX, worker, os.getpid(), _start_time(os.getpid()), next(_sequence))
        self.root = Path(tempfile.mkdtemp(prefix=lab_id + '-'))
        self.root.chmod(0o755)
        self.switch = '%s-switch' % lab_id
        self.controller = '%s-controller' % lab_id
        for name, kind, index in self._specs:
            self.members[name] = Member(name, kind, index, '%s-%s' % (lab_id, name))
        _ip('netns', 'add', self.controller)
        # This thread becomes the controller: what it starts from now on (ansible-playbook, the test API
        # server's threads) is in the lab's network and nowhere else, whichever namespace it came from.
        self._home = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
        self._thread = threading.get_ident()
        _setns('/run/netns/%s' % self.controller)
        self._network()
        self._make_user_files()
        for name in self.hosts:
            self._make_host(name)
        for name in self.hosts:
            self._start_sshd(name)
        for name in self.hosts:
            self.haproxy(name).start()

    def _network(self):
        _ip('netns', 'add', self.switch)
        _ip('-n', self.switch, 'link', 'add', 'br0', 'type', 'bridge')
        _ip('-n', self.switch, 'link', 'set', 'lo', 'up')
        _ip('-n', self.switch, 'link', 'set', 'br0', 'up')
        # the controller: the namespace this thread is in now
        _ip('link', 'set', 'lo', 'up')
        _ip('link', 'add', CONTROLLER_INTERFACE, 'type', 'veth', 'peer', 'name', 'controller', 'netns', self.switch)
        self._attach('controller')
        _ip('address', 'add', CONTROLLER + '/24', 'dev', CONTROLLER_INTERFACE)
        _ip('address', 'add', '2001:db8::1/64', 'dev', CONTROLLER_INTERFACE, 'nodad')
        _ip('link', 'set', CONTROLLER_INTERFACE, 'up')
        for member in self.members.values():
            _ip('netns', 'add', member.netns)
            port = 'p%d' % member.index
            _ip('link', 'add', INTERFACE, 'netns', member.netns, 'type', 'veth', 'peer', 'name', port,
                'netns', self.switch)
            self._attach(port)
            _ip('-n', member.netns, 'link', 'set', 'lo', 'up')
            _ip('-n', member.netns, 'address', 'add', member.address + '/24', 'dev', INTERFACE)
            _ip('-n', member.netns, 'address', 'add', member.address6 + '/64', 'dev', INTERFACE, 'nodad')
            _ip('-n', member.netns, 'link', 'set', INTERFACE, 'up')

    def _attach(self, port):
        _ip('-n', self.switch, 'link', 'set', port, 'master', 'br0')
        _ip('-n', self.switch, 'link', 'set', port, 'up')

    def _make_user_files(self):
        """The lab user's key, and the known_hosts the controller checks the hosts' keys against."""
        (self.root / 'ssh').mkdir()
        subprocess.run([_which('ssh-keygen'), '-q', '-t', 'ed25519', '-N', '', '-C', 'portico-lab',
                        '-f', str(self.root / 'ssh' / 'id_ed25519')], check=True, capture_output=True, timeout=30)
        (self.root / 'ssh' / 'known_hosts').write_text('')
        (self.root / 'cp').mkdir(mode=0o700)
        (self.root / 'tmp').mkdir(mode=0o700)
        passwd = Path('/etc/passwd').read_text()
        group = Path('/etc/group').read_text()
        used_uids = {int(line.split(':')[2]) for line in passwd.splitlines() if line.count(':') >= 6}
        used_gids = {int(line.split(':')[2]) for line in group.splitlines() if line.count(':') >= 3}
        self.uid = next(n for n in range(2000, 60000) if n not in used_uids and n not in used_gids)

    def _make_host(self, name):
        member = self.members[name]
        top = self.root / name
        # the host's own copies of what the mounts cover
        etc = top / 'etc'
        for directory in ('run', 'etc/haproxy', 'etc/keepalived', 'etc/ssh', 'etc/sudoers.d', 'var/lib/haproxy/dev',
                          'home'):
            (top / directory).mkdir(parents=True)
        haproxy = _ids('haproxy')
        (top / 'run' / 'haproxy').mkdir(mode=0o2775)
        os.chown(top / 'run' / 'haproxy', *haproxy)
        (top / 'run' / 'haproxy').chmod(0o2775)
        (top / 'run' / 'sshd').mkdir(mode=0o755)
        if Path('/etc/haproxy/errors').is_dir():
            shutil.copytree('/etc/haproxy/errors', etc / 'haproxy' / 'errors')
        (etc / 'haproxy' / 'haproxy.cfg').write_text(base_config())
        (top / 'haproxy.log').touch()
        # the lab user
        user, uid = self.user, self.uid
        with (etc / 'passwd').open('w') as out:
            out.write(Path('/etc/passwd').read_text() + '%s:x:%d:%d:Portico lab:/home/%s:/bin/bash\n' % (user, uid, uid, user))
        with (etc / 'group').open('w') as out:
            out.write(Path('/etc/group').read_text() + '%s:x:%d:\n' % (user, uid))
        # '*': no password, and not locked ('!'), so sshd takes its key
        for source, line in (('/etc/shadow', '%s:*:19000:0:99999:7:::\n'), ('/etc/gshadow', '%s:!::\n')):
            target = etc / os.path.basename(source)
            target.write_text((Path(source).read_text() if Path(source).exists() else '') + line % user)
            target.chmod(0o640)
            with contextlib.suppress(KeyError):
                os.chown(target, 0, _ids('shadow', group_only=True))
        (etc / 'hosts').write_text('127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\tcontroller\n' % CONTROLLER + ''.join(
            '%s\t%s\n%s\t%s\n' % (other.address, other.name, other.address6, other.name)
            for other in self.members.values()))
        home = top / 'home' / user
        (home / '.ssh').mkdir(parents=True, mode=0o700)
        key = (self.root / 'ssh' / 'id_ed25519.pub').read_text()
        (home / '.ssh' / 'authorized_keys').write_text(key)
        (home / '.ssh' / 'authorized_keys').chmod(0o600)
        for path in (home, home / '.ssh', home / '.ssh' / 'authorized_keys'):
            os.chown(path, uid, uid)
        home.chmod(0o750)
        (etc / 'sudoers.d').chmod(0o755)
        (etc / 'sudoers.d' / user).write_text(
            'Defaults:%s logfile=/run/sudo.log\n%s ALL=(ALL:ALL) NOPASSWD: ALL\n' % (user, user))
        (etc / 'sudoers.d' / user).chmod(0o440)
        # sshd: its own configuration and host key
        subprocess.run([_which('ssh-keygen'), '-q', '-t', 'ed25519', '-N', '', '-C', name,
                        '-f', str(etc / 'ssh' / 'ssh_host_ed25519_key')], check=True, capture_output=True, timeout=30)
        (etc / 'ssh' / 'sshd_config').write_text(
            'ListenAddress %s\nListenAddress %s\n' % (member.address, member.address6)
            + 'HostKey /etc/ssh/ssh_host_ed25519_key\nPidFile /run/sshd.pid\n'
            # no PAM: pam_loginuid and the session modules need a login system the lab does not have
            'UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n'
            'AllowUsers %s\nAuthorizedKeysFile .ssh/authorized_keys\nLogLevel VERBOSE\n' % user
            + 'Subsystem sftp /usr/lib/openssh/sftp-server\nAcceptEnv LANG LC_*\n')
        host_key = (etc / 'ssh' / 'ssh_host_ed25519_key.pub').read_text().split()[:2]
        with (self.root / 'ssh' / 'known_hosts').open('a') as known:
            known.write('%s %s\n[%s]:22 %s\n' % (member.address, ' '.join(host_key), member.address6, ' '.join(host_key)))
        mounts = [('run', '/run'), ('etc/haproxy', '/etc/haproxy'), ('var/lib/haproxy', '/var/lib/haproxy'),
                  ('etc/keepalived', '/etc/keepalived'), ('etc/ssh', '/etc/ssh'), ('etc/sudoers.d', '/etc/sudoers.d'),
                  ('etc/passwd', '/etc/passwd'), ('etc/shadow', '/etc/shadow'), ('etc/group', '/etc/group'),
                  ('etc/gshadow', '/etc/gshadow'), ('etc/hosts', '/etc/hosts'),
                  # last: the lab's own directory may be under /home
                  ('home', '/home')]
        self._mounts[name] = [(target, top / source) for source, target in mounts]
        script = ['set -e',
                  # the other labs' namespace handles: not held by this host
                  'umount -l /run/netns 2>/dev/null || true',
                  # /sys of this network namespace, as ip netns exec mounts it
                  'mount -t sysfs lab-sysfs /sys']
        script += ['mount --bind %s %s' % (top / source, target) for source, target in mounts]
        script += ['hostname %s' % name, 'echo ready', 'exec sleep infinity']
        holder = subprocess.Popen(
            [_which('nsenter'), '--net=/run/netns/%s' % member.netns, '--',
             _which('unshare'), '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', '-c', '\n'.join(script)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=HOST_ENV, cwd='/')
        self._holders[name] = holder
        line = holder.stdout.readline()
        if line.strip() != b'ready':
            holder.wait(10)
            raise LabError('the namespaces of %s were not set up: %s' % (name, holder.stderr.read().decode()))

    def _start_sshd(self, name):
        check = self.run(name, ['/usr/sbin/sshd', '-t'])
        if check.returncode != 0:
            raise LabError('sshd -t on %s: %s' % (name, check.stderr))
        started = self.run(name, ['/usr/sbin/sshd', '-E', '/run/sshd.log'])
        if started.returncode != 0:
            raise LabError('sshd on %s exited with %d: %s' % (name, started.returncode, started.stderr))
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((self.address(name), 22), timeout=1) as probe:
                    if probe.recv(4).startswith(b'SSH-'):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabError('sshd on %s does not answer: %s' % (name, self.path(name, '/run/sshd.log').read_text()))
            time.sleep(0.05)

    def close(self):
        """Stop everything in the lab and remove its namespaces and files (also after a failed build)."""
        errors = []
        if self._stack is not None:
            try:
                self._stack.close()
            except Exception as exc:  # pylint: disable=broad-except  # the rest is removed anyway
                errors.append(exc)
        for proxy in self._haproxy.values():
            with contextlib.suppress(Exception):
                proxy.stop(timeout=5)
        if self._home is not None:
            # back to the namespace this thread came from
            if threading.get_ident() != self._thread:
                errors.append(LabError('the lab was entered and left in different threads'))
            _setns_fd(self._home)
            os.close(self._home)
            self._home = None
        names = [member.netns for member in self.members.values()] + [
            name for name in (self.switch, self.controller) if name]
        try:
            _end_processes(names)
        except LabError as exc:
            errors.append(exc)
        for process in [*self._holders.values(), *self._keepalived.values()]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        for name in names:
            _delete_netns(name)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.members, self._holders, self._haproxy, self._keepalived = {}, {}, {}, {}
        self.switch = self.controller = self.root = self._stack = None
        if errors:
            raise LabError('the lab was not removed cleanly: %s' % errors)

    # -- what a test asks ----------------------------------------------------------------------

    def address(self, name):
        """The IPv4 address of a host, client or node (``'controller'``: this process's)."""
        return CONTROLLER if name == 'controller' else self.members[name].address

    def address6(self, name):
        return '2001:db8::1' if name == 'controller' else self.members[name].address6

    @staticmethod
    def floating_address(index=0):
        """An address of the lab's network that no member has (for a VIP): 192.0.2.200 + index."""
        if not 0 <= index <= 54:
            raise ValueError('floating addresses are 192.0.2.200 to 192.0.2.254')
        return '192.0.2.%d' % (200 + index)

    @staticmethod
    def interface(name):  # pylint: disable=unused-argument  # the same on every member, asked per host
        """The lab interface of a host (keepalived's ``interface``)."""
        return INTERFACE

    def namespace(self, name):
        """The name of a member's network namespace (``ip -n NAME ...``)."""
        return self.members[name].netns

    def path(self, host, path):
        """Where the file ``path`` of a host is seen from this process (through the host's bind mounts)."""
        path = str(path)
        for target, source in self._mounts[host]:
            if path == target or path.startswith(target + '/'):
                return Path(str(source) + path[len(target):])
        raise ValueError('%s is not in a directory of its own on %s (only %s)' % (
            path, host, ', '.join(target for target, dummy in self._mounts[host])))

    def _enter(self, name):
        member = self.members[name]
        if member.kind == 'host':
            return [_which('nsenter'), '--target', str(self._holders[name].pid), '--mount', '--uts', '--net', '--']
        return [_which('nsenter'), '--net=/run/netns/%s' % member.netns, '--']

    def run(self, name, argv, **kwargs):
        """Run argv as root in a member's namespaces (a host's mount namespace too); returns the CompletedProcess.

        Text output captured, a clean environment and no check unless given otherwise.
        """
        options = {'capture_output': True, 'text': True, 'timeout': 60, 'check': False, 'env': HOST_ENV, 'cwd': '/'}
        options.update(kwargs)
        return subprocess.run([*self._enter(name), *argv], **options)  # pylint: disable=subprocess-run-check

    def popen(self, name, argv, **kwargs):
        """Start argv in a member's namespaces and return the Popen (the caller waits for it)."""
        options = {'stdin': subprocess.DEVNULL, 'env': HOST_ENV, 'cwd': '/'}
        options.update(kwargs)
        return subprocess.Popen([*self._enter(name), *argv], **options)

    def in_netns(self, name, function, *args, **kwargs):
        """Call function in a member's network namespace (a thread of this process); returns its result."""
        return in_netns('/run/netns/%s' % self.members[name].netns, function, *args, **kwargs)

    def set_link(self, name, up):
        """Connect (up=True) or cut (up=False) a member from the bridge, as if its cable were pulled."""
        _ip('-n', self.switch, 'link', 'set', 'p%d' % self.members[name].index, 'up' if up else 'down')

    # -- HAProxy and keepalived ----------------------------------------------------------------

    def haproxy(self, host):
        """The host's :class:`LabHAProxy` (state(), reload(), wait_reloaded(), workers())."""
        if host not in self._haproxy:
            if self.members[host].kind != 'host':
                raise ValueError('%s is not a host of the lab' % host)
            self._haproxy[host] = LabHAProxy(self, host)
        return self._haproxy[host]

    def start_haproxy(self, host, timeout=10.0):
        """Start HAProxy on a host from its /etc/haproxy/haproxy.cfg; returns its ProcessState."""
        return self.haproxy(host).start(timeout)

    def stop_haproxy(self, host, timeout=10.0):
        self.haproxy(host).stop(timeout)

    def haproxy_running(self, host):
        return self.haproxy(host).is_running()

    def start_keepalived(self, host, timeout=10.0):
        """Start keepalived on a host from its /etc/keepalived/keepalived.conf, as Debian's unit does."""
        if self.keepalived_running(host):
            raise LabError('keepalived already runs on %s' % host)
        config = self.path(host, '/etc/keepalived/keepalived.conf')
        if not config.is_file() or not config.stat().st_size:
            raise LabError('%s has no /etc/keepalived/keepalived.conf (the unit would not start either)' % host)
        pidfile = self.path(host, '/run/keepalived.pid')
        pidfile.unlink(missing_ok=True)
        log = self.root / host / 'keepalived.log'
        with log.open('ab') as out:
            # --log-console: there is no syslog in the lab; the log is keepalived.log in the host's directory
            process = self.popen(host, [_which('keepalived'), '--dont-fork', '--log-console', '--log-detail'],
                                 stdout=out, stderr=out)
        self._keepalived[host] = process
        deadline = time.monotonic() + timeout
        while self._keepalived_pid(host) != process.pid:
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop_keepalived(host)
                raise LabError('keepalived on %s did not start:\n%s' % (host, log.read_text(errors='replace')[-3000:]))
            time.sleep(0.05)
        return process.pid

    def _keepalived_pid(self, host):
        try:
            return int(self.path(host, '/run/keepalived.pid').read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def stop_keepalived(self, host, timeout=10.0):
        process = self._keepalived.pop(host, None)
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def keepalived_running(self, host):
        process = self._keepalived.get(host)
        return process is not None and process.poll() is None

    def keepalived_log(self, host):
        path = self.root / host / 'keepalived.log'
        return path.read_text(errors='replace') if path.exists() else ''

    def holds(self, host, address):
        """Whether a host has address on its lab interface (a VIP keepalived added)."""
        shown = _ip('-n', self.namespace(host), '-o', 'address', 'show', 'dev', INTERFACE).stdout
        return (' %s/' % address) in shown

    # -- nodes and clients -----------------------------------------------------------------------

    def node_server(self, node, port, address=None, **options):
        """A started NodePortServer for ``node``'s nodePort ``port`` on its lab address (stopped with the lab).

        address: the node's IPv4 address unless given (``lab.address6(node)`` for IPv6); options go to
        NodePortServer (status, echo). It answers ``node=<node> port=<port>``.
        """
        server = self.in_netns(node, NodePortServer, node, address or self.address(node), port, **options)
        return self._stack.enter_context(server)

    def client_request(self, client, address, port, path='/', timeout=3.0):
        """One HTTP request from a client on a new connection; returns (status, body text stripped)."""
        return self.in_netns(client, http_get, address, port, path, timeout)

    def load(self, client, address, port, path='/', timeout=1.0, pause=0.0):
        """A :class:`Load` from a client to address:port: ``with lab.load('client', vip, 80) as load:``."""
        return Load('/run/netns/%s' % self.members[client].netns, address, port, path, timeout, pause)

    # -- Ansible ---------------------------------------------------------------------------------

    def inventory_vars(self, host):
        """The host vars that reach a host over SSH as the lab user with become through sudo.

        The interpreter is left to discovery on the host. The only role variable set is the reload
        command: the lab has no systemd (see the module docstring).
        """
        ssh = self.root / 'ssh'
        return {
            'ansible_host': self.address(host),
            'ansible_port': 22,
            'ansible_user': self.user,
            'ansible_ssh_private_key_file': str(ssh / 'id_ed25519'),
            # only the lab's known_hosts, checked strictly; no agent, no ~/.ssh/config
            'ansible_ssh_common_args': ' '.join([
                '-F', 'none', '-o', 'UserKnownHostsFile=%s' % (ssh / 'known_hosts'),
                '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
                '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none']),
            'ansible_control_path_dir': str(self.root / 'cp'),
            'ansible_become': True,
            'ansible_become_method': 'sudo',
            'haproxy_sync_reload_command': HAPROXY_RELOAD_COMMAND,
        }

    def inventory(self, load_balancers=None, **all_vars):
        """localhost (the controller, this Python) and the group loadbalancers (the lab's hosts, over SSH)."""
        variables = {'haproxy_sync_drain_state_file': str(self.root / 'drain-state.json')}
        variables.update(all_vars)
        controller = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
        hosts = self.hosts if load_balancers is None else load_balancers
        return {'all': {'vars': variables, 'hosts': {'localhost': controller},
                        'children': {'loadbalancers': {'hosts': {host: self.inventory_vars(host) for host in hosts}}}}}

    def write_inventory(self, path=None, load_balancers=None, **all_vars):
        path = Path(path or self.root / 'inventory.json')
        path.write_text(json.dumps(self.inventory(load_balancers, **all_vars), indent=1))
        return path

    def env(self, base=None):
        """The environment of an ansible-playbook run against the lab: base (os.environ by default) with the
        controller's temporary files in the lab (the hosts keep theirs in the lab user's home)."""
        env = dict(os.environ if base is None else base)
        env.pop('ANSIBLE_REMOTE_TEMP', None)
        env['ANSIBLE_LOCAL_TEMP'] = str(self.root / 'tmp')
        return env

    def files(self, host, *directories):
        """{path on the host: bytes} of every file under directories (default /etc/haproxy and /etc/keepalived)."""
        found = {}
        for directory in directories or ('/etc/haproxy', '/etc/keepalived'):
            base = self.path(host, directory)
            for path in sorted(base.rglob('*')):
                if path.is_file() and not path.is_symlink():
                    found[directory + '/' + str(path.relative_to(base))] = path.read_bytes()
        return found


def _ids(name, group_only=False):
    """(uid, gid) of a user of this machine, or a group's gid."""
    import grp
    import pwd
    if group_only:
        return grp.getgrnam(name).gr_gid
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def base_config(**overrides):
    """haproxy.cfg as the role's built-in base template renders it with its defaults (no proxies yet)."""
    role = REPO / 'roles' / 'haproxy_sync'
    variables = {key: value for key, value in yaml.safe_load((role / 'defaults' / 'main.yml').read_text()).items()
                 if key.startswith('haproxy_sync_') and isinstance(value, (str, int, float, bool))}
    variables.update(overrides)
    template = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return template.from_string((role / 'templates' / 'base.cfg.j2').read_text()).render(**variables)
