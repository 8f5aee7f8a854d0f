"""Real HAProxy instances, stand-in NodePort servers and HTTP probes, all on 127.0.0.0/8.

HAProxy runs in master-worker mode (``haproxy -W -D -p PIDFILE -f CFG``) from a scratch
directory; ``reload()`` sends USR2 to the master, as ``systemctl reload haproxy`` does.
A :class:`NodePortServer` stands in for one node's nodePort and answers every HTTP request
with ``node=<name> port=<port>``, so a test can see which node a request reached.
Everything is a context manager and is stopped by the test that started it.
"""

import collections
import contextlib
import http.client
import http.server
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HAPROXY = shutil.which('haproxy') or '/usr/sbin/haproxy'


def _require_loopback(address):
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f'{address} is not a loopback address; tests bind 127.0.0.0/8 only')


def _require_test_address(address):
    """Loopback, or the documentation ranges the lab's namespaces use (tests/support/lab.py)."""
    parsed = ipaddress.ip_address(address)
    if not (parsed.is_loopback or parsed in ipaddress.ip_network('192.0.2.0/24')
            or parsed in ipaddress.ip_network('2001:db8::/32')):
        raise ValueError(f'{address} is neither loopback nor a lab address (192.0.2.0/24, 2001:db8::/32)')


def minimal_config(stats_socket, hard_stop_after='5s'):
    """A valid configuration with no proxies, to start an instance before the first sync."""
    return (
        'global\n'
        '    master-worker\n'
        f'    stats socket {stats_socket} mode 660 level admin expose-fd listeners\n'
        f'    hard-stop-after {hard_stop_after}\n'
        '\n'
        'defaults\n'
        '    mode tcp\n'
        '    timeout connect 2s\n'
        '    timeout client 10s\n'
        '    timeout server 10s\n'
    )


def check_config(path):
    """Run ``haproxy -c -f path``; returns the CompletedProcess (text output)."""
    return subprocess.run([HAPROXY, '-c', '-f', str(path)], capture_output=True, text=True, check=False)


def _proc_stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = stat.rsplit(')', 1)[1].split()
    return fields[0], int(fields[1])


def is_alive(pid):
    """True while the process exists and is not a zombie (no init reaps daemons in some containers)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != 'Z'


def children_of(pid):
    """Live child processes of pid."""
    children = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[1] == pid and stat[0] != 'Z':
                children.add(int(entry))
    return frozenset(children)


@dataclass(frozen=True)
class ProcessState:
    """Master pid and worker pids of a running instance: a reload keeps the master, replaces the workers."""

    master: int
    workers: frozenset


class HAProxyError(RuntimeError):
    pass


class HAProxy:
    """One HAProxy instance in master-worker mode, started from ``config``.

    ``with HAProxy(config, pidfile) as proxy:`` starts it and stops it on exit.
    """

    def __init__(self, config, pidfile, log=None):
        self.config = Path(config)
        self.pidfile = Path(pidfile)
        self.log = Path(log) if log else self.pidfile.with_suffix('.log')

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def master_pid(self):
        try:
            return int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def workers(self):
        master = self.master_pid
        return children_of(master) if master and is_alive(master) else frozenset()

    def is_running(self):
        master = self.master_pid
        return bool(master) and is_alive(master)

    def state(self):
        """The current :class:`ProcessState`; raises if the instance is not running."""
        if not self.is_running():
            raise HAProxyError(f'HAProxy is not running ({self.pidfile}){self._log_tail()}')
        return ProcessState(self.master_pid, self.workers())

    def start(self, timeout=10.0):
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        with self.log.open('ab') as log:
            # -D: the command returns once the master has daemonized; its pid goes to the pidfile.
            result = subprocess.run(
                [HAPROXY, '-W', '-D', '-p', str(self.pidfile), '-f', str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False, timeout=timeout,
            )
        if result.returncode != 0:
            raise HAProxyError(f'haproxy exited with {result.returncode}{self._log_tail()}')
        self._wait(lambda: self.is_running() and self.workers(), timeout, 'start')
        return self.state()

    def reload(self, timeout=10.0):
        """Send USR2 to the master and wait until the old workers are replaced."""
        before = self.state()
        os.kill(before.master, signal.SIGUSR2)
        return self.wait_reloaded(before, timeout)

    def wait_reloaded(self, before, timeout=10.0):
        """Wait until the master of ``before`` runs only new workers, i.e. a reload finished."""
        def reloaded():
            workers = self.workers()
            return self.master_pid == before.master and workers and not workers & before.workers
        self._wait(reloaded, timeout, 'reload')
        return self.state()

    def stop(self, timeout=10.0):
        master = self.master_pid
        if not master or not is_alive(master):
            return
        pids = {master} | self.workers()
        os.kill(master, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(is_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            if is_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _wait(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise HAProxyError(f'HAProxy {what} did not finish within {timeout}s{self._log_tail()}')
            time.sleep(0.05)

    def _log_tail(self):
        try:
            lines = self.log.read_text(errors='replace').splitlines()[-15:]
        except FileNotFoundError:
            return ''
        return '\n' + '\n'.join(lines) if lines else ''


class _IdentityHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'

    def do_GET(self):  # noqa: N802 (name required by BaseHTTPRequestHandler)
        body = self.server.body
        if self.server.echo:
            # what a proxy in front added, as the backend sees it
            body = body.rstrip(b'\n') + (' %s=%s\n' % (self.server.echo, self.headers.get(self.server.echo))).encode()
        self.server.count_request()
        self.send_response(self.server.status)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class NodePortServer(http.server.ThreadingHTTPServer):
    """Stands in for ``node``'s nodePort ``port`` on ``address``; answers ``node=<node> port=<port>``.

    ``address`` is a loopback address, or a lab address when made in a lab namespace (``Lab.node_server``).

    ``status`` is the HTTP status it answers with (a kube-proxy health port answers 503 on a node
    without a local endpoint); ``echo`` names a request header whose value is added to the answer.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, node, address, port, status=200, echo=None):
        _require_test_address(address)
        self.address_family = socket.AF_INET6 if ':' in address else socket.AF_INET
        self.node, self.address, self.port, self.status, self.echo = node, address, port, status, echo
        self.identity = f'node={node} port={port}'
        self.body = (self.identity + '\n').encode()
        self.requests = 0
        self._lock = threading.Lock()
        self._thread = None
        super().__init__((address, port), _IdentityHandler)

    def count_request(self):
        with self._lock:
            self.requests += 1

    def __enter__(self):
        self._thread = threading.Thread(target=self.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def nodeport_servers(nodes, ports):
    """Start one :class:`NodePortServer` per node and port.

    ``nodes`` maps node name to loopback address; yields ``{(node, port): server}``.
    """
    with contextlib.ExitStack() as stack:
        yield {
            (node, port): stack.enter_context(NodePortServer(node, address, port))
            for node, address in nodes.items()
            for port in ports
        }


def identity(node, port):
    """The body a :class:`NodePortServer` for ``node`` and ``port`` answers."""
    return f'node={node} port={port}'


def http_get(address, port, path='/', timeout=3.0):
    """One real HTTP request on a new connection; returns (status, body text stripped)."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request('GET', path, headers={'Connection': 'close'})
        response = connection.getresponse()
        return response.status, response.read().decode().strip()
    finally:
        connection.close()


def spread(address, port, requests=12, timeout=3.0):
    """Send ``requests`` HTTP requests, one connection each; returns a Counter of bodies.

    Failed requests are counted as ``error: <exception>`` or ``status <code>``.
    """
    bodies = collections.Counter()
    for unused in range(requests):
        try:
            status, body = http_get(address, port, timeout=timeout)
            bodies[body if status == 200 else f'status {status}'] += 1
        except (OSError, http.client.HTTPException) as exc:
            bodies[f'error: {type(exc).__name__}'] += 1
    return bodies


def wait_for_spread(address, port, expected, requests=12, timeout=10.0):
    """Wait until ``requests`` requests reach exactly the set of bodies ``expected``; returns the last Counter.

    Health checks and old workers finishing make the first requests after a reload unreliable.
    """
    expected = set(expected)
    deadline = time.monotonic() + timeout
    while True:
        bodies = spread(address, port, requests)
        if set(bodies) == expected or time.monotonic() > deadline:
            return bodies
        time.sleep(0.1)


def port_is_free(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def free_ports(count, low, high, addresses=('127.0.0.1',)):
    """``count`` distinct ports in [low, high] that are free on every one of ``addresses``."""
    for address in addresses:
        _require_loopback(address)
    candidates = list(range(low, high + 1))
    random.shuffle(candidates)
    chosen = []
    for port in candidates:
        if all(port_is_free(address, port) for address in addresses):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f'fewer than {count} free ports in {low}-{high} on {addresses}')


def well_known_ports(wanted, address, low=20000, high=29999):
    """The well-known ports ``wanted`` (such as 80 and 443) where this user may bind them on
    ``address``, otherwise free ports of [low, high] in their place; in the order given."""
    _require_loopback(address)
    if all(port_is_free(address, port) for port in wanted):
        return list(wanted)
    return free_ports(len(wanted), low, high, [address])


def start_load_balancers(stack, root, hosts):
    """A running HAProxy per host in ``root/<host>/`` (minimal config), entered on ``stack``.

    Returns ``{host: HAProxy}``; the config of each is ``root/<host>/haproxy.cfg``.
    """
    proxies = {}
    for host in hosts:
        (root / host).mkdir()
        config = root / host / 'haproxy.cfg'
        config.write_text(minimal_config(root / host / 'admin.sock'))
        proxies[host] = stack.enter_context(HAProxy(config, root / 'run' / ('%s.pid' % host)))
    return proxies
