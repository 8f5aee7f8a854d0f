"""ansible-rulebook running the collection's rulebook ``sync_on_change`` (the real source
``portico.k8s.nodeport_changes``, the real ``playbooks/sync.yml``) against the test API server,
with real HAProxy load balancers and stand-in nodes, all on loopback.

:class:`RulebookLab` starts all of it and stops all of it. ``lab.change(index)`` creates one more
NodePort service at the API and measures when the source's event came and when each load
balancer served real traffic for it. Used by ``tests/eda/test_rulebook.py`` (one change) and by
the benchmark (``bench/run.py --only eda``: several changes, medians).
"""

import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import NodePortServer, free_ports, identity, nodeport_servers, spread, start_load_balancers
from tests.support.inventory import BIN, REPO, inventory, load_balancer, sync_env

RULEBOOK = shutil.which('ansible-rulebook', path=str(BIN)) or shutil.which('ansible-rulebook')
RULEBOOK_NAME = 'portico.k8s.sync_on_change'
LOAD_BALANCERS = {'lb-a': '127.0.0.2', 'lb-b': '127.0.0.3'}
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2'}
NAMESPACE = 'shop'
# What ansible-rulebook's logging prints for each event the source sends.
EVENT_LINE = re.compile(
    r'^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - portico\.k8s\.nodeport_changes - INFO - event: (?P<event>\{.*\})\s*$',
    re.M)
# Printed once at the end of every playbook run.
RECAP = 'PLAY RECAP'


def missing():
    """Why ansible-rulebook cannot run here, or None."""
    if not RULEBOOK:
        return 'ansible-rulebook is not installed'
    if not (shutil.which('java') or os.environ.get('JAVA_HOME')):
        return 'ansible-rulebook needs a Java runtime (JDK 17+), and none is installed'
    return None


def wait(condition, timeout, step=0.05):
    """Poll ``condition`` until it is true (returns True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


class RulebookLab:
    """The test API server with two nodes and ``services`` service slots, a running HAProxy per
    load balancer, and ``ansible-rulebook -r portico.k8s.sync_on_change`` watching them.

    Slot 0 (``shop/web``) exists from the start; ``change(i)`` creates slot ``i``. Every slot has
    its own frontend port and nodePort, chosen free on the given loopback addresses, and a
    stand-in server per node answering on the nodePort. ``rulebook_vars`` go to
    ``ansible-rulebook --vars``; ``env`` is added to its environment (and so to the playbook's).
    """

    def __init__(self, root, certdir, services=2, load_balancers=None, nodes=None, rulebook_vars=None, env=None,
                 readme_inventory=False):
        self.root, self.certdir = Path(root), Path(certdir)
        self.readme_inventory = readme_inventory
        self.services = services
        self.load_balancers = dict(load_balancers or LOAD_BALANCERS)
        self.nodes = dict(nodes or NODES)
        self.rulebook_vars, self.extra_env = rulebook_vars, env or {}
        self.log = self.root / 'rulebook.log'
        self.api = self.process = self.proxies = None
        self.node_servers = {}
        self.frontend_ports = self.node_ports = ()
        self._stack = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        try:
            self._start(self._stack)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _start(self, stack):
        self.frontend_ports = free_ports(self.services, 20000, 29999, list(self.load_balancers.values()))
        self.node_ports = free_ports(self.services, 30000, 32767, list(self.nodes.values()))
        collections = self.root / 'collections' / 'ansible_collections' / 'portico'
        collections.mkdir(parents=True)
        (collections / 'k8s').symlink_to(REPO)
        (self.root / 'tmp').mkdir()
        self.api = stack.enter_context(FakeKubeAPI(self.certdir, watch=True, bookmark_interval=5))
        stack.enter_context(nodeport_servers(self.nodes, self.node_ports))
        self.api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in self.nodes.items()]
            + [self.service(0)]))
        self.proxies = start_load_balancers(stack, self.root, self.load_balancers)
        hosts = {host: load_balancer(self.root / host, address, self.proxies[host].master_pid)
                 for host, address in self.load_balancers.items()}
        if self.readme_inventory:
            inventory_path = self.root / 'inventory.yml'
            inventory_path.write_text(yaml.safe_dump(self.readme_shaped(hosts), sort_keys=False))
        else:
            inventory_path = self.root / 'inventory.json'
            inventory_path.write_text(json.dumps(inventory(hosts, self.root)))
        command = [RULEBOOK, '-r', RULEBOOK_NAME, '-i', str(inventory_path), '-v']
        if self.rulebook_vars:
            (self.root / 'rulebook-vars.json').write_text(json.dumps(self.rulebook_vars))
            command += ['--vars', str(self.root / 'rulebook-vars.json')]
        env = sync_env(self.api, temp=self.root / 'tmp')
        env.update({'ANSIBLE_COLLECTIONS_PATH': str(self.root / 'collections'), 'HOME': str(self.root),
                    'TMPDIR': str(self.root / 'tmp'),
                    # the playbook's output reaches the log as it happens, not when a buffer fills
                    'PYTHONUNBUFFERED': '1'})
        env.update(self.extra_env)
        log = stack.enter_context(self.log.open('w'))
        self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        stack.callback(self._stop_rulebook)
        stack.callback(lambda: [servers.close() for servers in self.node_servers.values()])

    def readme_shaped(self, hosts):
        """The inventory of the README's step 3: the cluster in the variables of all, the load balancers in
        the group loadbalancers, and no localhost (the README's AWX section says to leave it out). Each
        host's variables stand for its SSH connection there: a local one to a HAProxy of this machine."""
        local = {'ansible_connection': 'local', 'ansible_python_interpreter': str(BIN / 'python')}
        return {'all': {
            'vars': {'haproxy_sync_host': self.api.url, 'haproxy_sync_ca_cert': str(self.api.ca_path)},
            'children': {'loadbalancers': {'hosts': dict((host, dict(local, **host_vars))
                                                         for host, host_vars in hosts.items())}}}}

    def _stop_rulebook(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    # ------------------------------------------------------------ the cluster and the load balancers

    def service(self, index):
        """The Service of slot ``index``: ``shop/web`` (NodePort) for 0, ``shop/app-<index>`` (LoadBalancer) after."""
        name, kind = ('web', 'NodePort') if index == 0 else ('app-%d' % index, 'LoadBalancer')
        return objects.service(name, NAMESPACE, type=kind, ports=[
            objects.service_port(self.frontend_ports[index], name='http', node_port=self.node_ports[index])])

    def served(self, host, index):
        """True when real requests through ``host``'s frontend of slot ``index`` reach every node."""
        wanted = {identity(node, self.node_ports[index]) for node in self.nodes}
        return set(spread(self.load_balancers[host], self.frontend_ports[index], requests=2 * len(wanted),
                          timeout=0.5)) == wanted

    def node_change(self, name, address=None, timeout=40.0, step=0.05):
        """Add the Ready node ``name`` at ``address`` (its stand-in nodePorts answer from then on),
        or without an address delete it, and measure as ``change`` does until real requests through
        every load balancer's slot 0 reach exactly the nodes there are now. ``reloads`` counts the
        load balancers whose HAProxy workers were replaced meanwhile."""
        runs, events = self.runs_finished(), len(self.events('change'))
        before = dict((host, proxy.state()) for host, proxy in self.proxies.items())
        if address:
            self.node_servers[name] = contextlib.ExitStack()
            for port in self.node_ports:
                self.node_servers[name].enter_context(NodePortServer(name, address, port))
            self.nodes[name] = address
            created = time.time()
            self.api.add_node(objects.node(name, internal_ips=address))
        else:
            del self.nodes[name]
            created = time.time()
            self.api.delete_node(name)
        served = {}
        deadline = created + timeout
        while len(served) < len(self.load_balancers) and time.time() < deadline:
            for host in self.load_balancers:
                if host not in served and self.served(host, 0):
                    served[host] = time.time() - created
            time.sleep(step)
        ended = None
        if wait(lambda: self.runs_finished() > runs, max(deadline - time.time(), 1.0)):
            ended = time.time() - created
        if not address:
            self.node_servers.pop(name).close()
        new = self.events('change')[events:]
        reloads = sum(1 for host, proxy in self.proxies.items() if proxy.state().workers != before[host].workers)
        return {'node': name, 'joined': bool(address), 'created': created, 'events': len(new),
                'event': new[0][0] - created if new else None, 'served': served, 'run_ended': ended,
                'reloads': reloads}

    # ------------------------------------------------------------ what ansible-rulebook did

    def output(self):
        return self.log.read_text(errors='replace')

    def tail(self, chars=6000):
        return self.output()[-chars:]

    def events(self, reason=None):
        """The source's events so far, as ``(wall-clock time, event)``, optionally of one reason."""
        out = []
        for match in EVENT_LINE.finditer(self.output()):
            event = json.loads(match['event'])
            if reason is None or event.get('reason') == reason:
                stamp = datetime.datetime.strptime(match['stamp'], '%Y-%m-%d %H:%M:%S,%f').timestamp()
                out.append((stamp, event))
        return out

    def runs_finished(self):
        """How many playbook runs have ended."""
        return self.output().count(RECAP)

    def wait_started(self, timeout=90):
        """Wait until the startup event's run has served slot 0 on every load balancer and ended."""
        return (wait(lambda: all(self.served(host, 0) for host in self.load_balancers), timeout)
                and wait(lambda: self.runs_finished() >= 1, timeout))

    def change(self, index, timeout=40.0, step=0.05):
        """Create slot ``index``'s service and measure, in seconds after the create:
        ``event`` (the source's first change event), ``served`` (``{host: when it served real
        traffic}``) and ``run_ended`` (the playbook run finished). ``events`` counts the change
        events, ``created`` is the wall-clock time of the create."""
        runs, events = self.runs_finished(), len(self.events('change'))
        created = time.time()
        self.api.add_service(self.service(index))
        served = {}
        deadline = created + timeout
        while len(served) < len(self.load_balancers) and time.time() < deadline:
            for host in self.load_balancers:
                if host not in served and self.served(host, index):
                    served[host] = time.time() - created
            time.sleep(step)
        ended = None
        if wait(lambda: self.runs_finished() > runs, max(deadline - time.time(), 1.0)):
            ended = time.time() - created
        new = self.events('change')[events:]
        return {'index': index, 'created': created, 'events': len(new),
                'event': new[0][0] - created if new else None, 'served': served, 'run_ended': ended}
