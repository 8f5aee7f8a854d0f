"""End-to-end: what an operator sees of the load balancers. The metrics frontend (HAProxy's
Prometheus exporter) on a management address, the node_exporter textfile on each load balancer,
the job's stats (through ansible-runner, as AWX reads them) and the JSON report of each run, and
playbooks/status.yml.

Two real HAProxy load balancers on loopback, the test API server, and stand-in NodePorts on
127.0.1.x. The tests run in file order on one lab: a changing run, a no-op run, a run that fails on
the first load balancer, a run that cannot read the cluster, then the status view after the
cluster changed and a node's stand-in stopped answering.
"""

import base64
import contextlib
import http.client
import json
import re
import shutil
import subprocess
import time

import pytest
import yaml

from ansible_collections.portico.k8s.plugins.module_utils import _report, _status_view
from ansible_collections.portico.k8s.plugins.module_utils._runtime import ask
from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import NodePortServer, free_ports, start_load_balancers
from tests.support.inventory import REPO, inventory, load_balancer, sync_env

ansible_runner = pytest.importorskip('ansible_runner')

pytestmark = pytest.mark.e2e

LOAD_BALANCERS = {'lb-a': '127.0.0.2', 'lb-b': '127.0.0.3'}
# the metrics frontends' own addresses: lb-a a management address behind basic auth and an
# allow-list, lb-b a loopback one
METRICS = {'lb-a': '127.0.0.12', 'lb-b': '127.0.0.14'}
ALLOWED, REFUSED = '127.0.0.1', '127.0.0.13'
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2'}
PASSWORD = 'scrape-me'


class Lab:
    def __init__(self, root, api, web_port, node_port, metrics_port, password_hash):
        self.root, self.api = root, api
        self.web_port, self.node_port, self.metrics_port = web_port, node_port, metrics_port
        self.password_hash = password_hash
        self.proxies, self.nodes = {}, {}
        self.report = root / 'reports' / 'last-sync.json'
        self.runs = 0

    def textfile(self, host):
        return self.root / host / 'portico.prom'

    def config(self, host):
        return self.root / host / 'haproxy.cfg'

    def write_inventory(self):
        hosts = {}
        for host, address in LOAD_BALANCERS.items():
            extra = {'haproxy_sync_metrics_address': METRICS[host], 'haproxy_sync_metrics_port': self.metrics_port,
                     'haproxy_sync_textfile': str(self.textfile(host)), 'haproxy_sync_check_interval': '200ms'}
            if host == 'lb-a':
                extra.update(haproxy_sync_metrics_users=[{'name': 'prometheus', 'password': self.password_hash}],
                             haproxy_sync_metrics_allow=['%s/32' % ALLOWED, METRICS[host]])
            hosts[host] = load_balancer(self.root / host, address, self.proxies[host].master_pid, **extra)
        document = inventory(hosts, self.root, haproxy_sync_report=str(self.report))
        (self.root / 'inventory.json').write_text(json.dumps(document))

    def run(self, playbook='playbooks/sync.yml', token=None, extravars=None):
        """One ansible-playbook run through ansible-runner, as AWX runs a job: (runner, events)."""
        self.runs += 1
        private = self.root / 'jobs' / ('%d' % self.runs)
        private.mkdir(parents=True)
        (private / 'project').symlink_to(REPO, target_is_directory=True)
        env = sync_env(self.api, token, self.root / 'tmp')
        runner = ansible_runner.run(
            private_data_dir=str(private), playbook=playbook, inventory=str(self.root / 'inventory.json'),
            envvars=env, extravars=extravars or {}, quiet=True, timeout=240)
        return runner, list(runner.events)

    def report_now(self):
        return json.loads(self.report.read_text())

    def records(self, host):
        return _report.read_textfile(self.textfile(host).read_text())


def job_stats(events):
    """The job's stats as AWX shows them (set_stats data, the artifacts of the playbook_on_stats event)."""
    found = [e['event_data'] for e in events if e['event'] == 'playbook_on_stats']
    assert len(found) == 1
    return found[0]['artifact_data']['portico_sync']


def failed_output(events):
    return '\n'.join(e.get('stdout', '') for e in events if e['event'] in ('runner_on_failed', 'runner_on_unreachable'))


def ok_result(events, task):
    return {e['event_data']['host']: e['event_data']['res'] for e in events
            if e['event'] == 'runner_on_ok' and e['event_data'].get('task') == task}


def metrics_get(port, path='/metrics', source=ALLOWED, auth=True, address=METRICS['lb-a']):
    """(status, body) of one request to a metrics frontend from the source address."""
    connection = http.client.HTTPConnection(address, port, timeout=5, source_address=(source, 0))
    headers = {'Connection': 'close'}
    if auth:
        headers['Authorization'] = 'Basic ' + base64.b64encode(('prometheus:' + PASSWORD).encode()).decode()
    try:
        connection.request('GET', path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def sha512_crypt(password):
    """A crypt(3) SHA-512 hash, as an operator makes one (openssl passwd -6), or Python's crypt without openssl."""
    if shutil.which('openssl'):
        return subprocess.run(['openssl', 'passwd', '-6', '-salt', 'portico1', password], capture_output=True,
                              text=True, check=True).stdout.strip()
    import crypt  # pylint: disable=deprecated-module
    return crypt.crypt(password, '$6$portico1$')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('observability')
    web_port, metrics_port, late_port = free_ports(3, 20000, 29999,
                                                   list(LOAD_BALANCERS.values()) + list(METRICS.values()))
    node_port, = free_ports(1, 30000, 32767, list(NODES.values()))
    password_hash = sha512_crypt(PASSWORD)
    with FakeKubeAPI(root / 'certs') as api, contextlib.ExitStack() as stack:
        lab = Lab(root, api, web_port, node_port, metrics_port, password_hash)
        lab.late_port = late_port
        for name, address in NODES.items():
            lab.nodes[name] = stack.enter_context(NodePortServer(name, address, node_port))
        api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in NODES.items()]
            + [objects.service('web', 'shop', type='NodePort',
                               ports=[objects.service_port(web_port, name='http', node_port=node_port)]),
               # a tenant's service that asks for the metrics port
               objects.service('grab', 'tenant', type='NodePort', ports=[objects.service_port(metrics_port)]),
               objects.service('dns', 'infra', type='NodePort', ports=[objects.service_port(53, protocol='UDP')])]))
        lab.proxies.update(start_load_balancers(stack, root, LOAD_BALANCERS))
        lab.write_inventory()
        yield lab


def test_a_changing_run_records_what_each_load_balancer_did(lab):
    runner, events = lab.run()
    assert runner.rc == 0, failed_output(events) or runner.stdout.read()
    report = lab.report_now()
    assert report['run']['result'] == 'success' and report['run']['reloads'] == 2
    assert report['run']['last_success_at'] == report['run']['finished_at']
    model = report['model']
    assert model['counts'] == {'frontends': 1, 'backends': 1, 'eligible_nodes': 2, 'draining_nodes': 0,
                               'excluded_nodes': 0, 'excluded_services': 2}
    assert model['source']['kind'] == 'api' and model['source']['server'] == lab.api.url
    # the tenant's service does not get the metrics port, and says why
    assert ('tenant/grab %d/TCP: frontend port %d is the metrics port of the load balancers (haproxy_sync_metrics_port)'
            % (lab.metrics_port, lab.metrics_port)) in model['excluded_services']
    for host in LOAD_BALANCERS:
        entry = report['load_balancers'][host]
        assert entry['result'] == 'success' and entry['way'] == 'reload' and entry['changed'], entry
        assert entry['generation'] == model['generation'] and entry['last_success_at'] == report['run']['finished_at']
        assert 'frontend tenant.grab' not in lab.config(host).read_text()
        assert 'frontend portico_metrics' in lab.config(host).read_text()
        # the textfile on the load balancer says the same
        record = lab.records(host)
        assert record['success'] and record['successes'] == 1 and record['failures'] == 0
        assert record['reloads'] == 1 and record['runtime_updates'] == 0 and record['last_run_reloaded']
        assert record['generation'] == model['generation'] and record['counts'] == model['counts']
        assert record['load_balancer'] == host and record['config'] == str(lab.config(host))
    # the job's stats carry the same facts, without the lists of excluded services
    stats = job_stats(events)
    assert stats['run'] == report['run'] and stats['load_balancers'] == report['load_balancers']
    assert 'excluded_services' not in stats['model'] and stats['model']['counts'] == model['counts']
    # the password hash is nowhere in what Ansible showed
    assert lab.password_hash not in runner.stdout.read()


def test_the_metrics_frontend_serves_the_exporter_only_as_allowed(lab):
    status, body = metrics_get(lab.metrics_port)
    assert status == 200 and 'haproxy_backend_active_servers{proxy="shop.web.%d"} 2' % lab.web_port in body
    status, body = metrics_get(lab.metrics_port, path='/stats;csv')
    assert status == 200 and body.startswith('# pxname,svname,')
    assert metrics_get(lab.metrics_port, auth=False)[0] == 401
    assert metrics_get(lab.metrics_port, path='/other')[0] == 404
    # from an address not allowed, the connection is refused before a byte is read
    with pytest.raises((OSError, http.client.HTTPException)):
        metrics_get(lab.metrics_port, source=REFUSED)
    # lb-b's on loopback, without basic auth
    status, body = metrics_get(lab.metrics_port, auth=False, address=METRICS['lb-b'], source=METRICS['lb-b'])
    assert status == 200 and 'haproxy_process_nbthread' in body
    # the Services' address does not serve it
    with pytest.raises(OSError):
        metrics_get(lab.metrics_port, address=LOAD_BALANCERS['lb-a'])


def test_a_no_op_run_records_that_nothing_changed(lab):
    before = lab.report_now()
    runner, events = lab.run()
    assert runner.rc == 0, failed_output(events) or runner.stdout.read()
    report = lab.report_now()
    assert report['run']['result'] == 'success' and report['run']['reloads'] == 0
    assert report['run']['last_success_at'] > before['run']['last_success_at']
    assert report['model']['generation'] == before['model']['generation']
    for host in LOAD_BALANCERS:
        assert report['load_balancers'][host]['way'] == 'none' and not report['load_balancers'][host]['changed']
        record = lab.records(host)
        assert record['success'] and record['successes'] == 2 and record['reloads'] == 1
        assert not record['last_run_reloaded'] and record['last_run_runtime_changes'] == 0
        assert record['last_success_at'] == record['last_run_at']
    assert job_stats(events)['load_balancers'] == report['load_balancers']


def test_a_run_that_fails_on_a_load_balancer_keeps_the_last_success_time(lab):
    before, records = lab.report_now(), dict((host, lab.records(host)) for host in LOAD_BALANCERS)
    lab.api.add_service(objects.service('late', 'shop', type='NodePort', ports=[objects.service_port(lab.late_port)]))
    runner, events = lab.run(extravars={'haproxy_sync_validate_command': '/bin/false %s'})
    assert runner.rc != 0
    assert 'failed to validate' in failed_output(events)
    report = lab.report_now()
    assert report['run']['result'] == 'failure' and report['run']['failed_stage'] == 'load balancer lb-a'
    assert 'lb-a: the new %s failed to validate' % lab.config('lb-a') in report['run']['message']
    assert report['run']['last_success_at'] == before['run']['last_success_at']
    assert report['load_balancers']['lb-a']['result'] == 'failure'
    # the rollout stopped at the first load balancer: the second was not reached, and keeps its last success
    assert report['load_balancers']['lb-b'] == {
        'result': 'not reached', 'way': 'not reached', 'changed': False,
        'message': 'not reached: the run stopped before this load balancer',
        'last_success_at': before['load_balancers']['lb-b']['last_success_at']}
    failed = lab.records('lb-a')
    assert not failed['success'] and failed['failures'] == 1 and failed['successes'] == 2
    assert failed['last_success_at'] == records['lb-a']['last_success_at'] < failed['last_run_at']
    # what it still serves is the last model
    assert failed['generation'] == records['lb-a']['generation'] and failed['counts'] == records['lb-a']['counts']
    assert lab.records('lb-b') == records['lb-b']
    assert job_stats(events)['run'] == report['run']


def test_a_run_that_cannot_read_the_cluster_is_recorded_too(lab):
    before = lab.report_now()
    textfiles = dict((host, lab.textfile(host).read_bytes()) for host in LOAD_BALANCERS)
    runner, events = lab.run(token='not-the-token')
    assert runner.rc != 0 and '401 Unauthorized' in failed_output(events)
    report = lab.report_now()
    assert report['run']['result'] == 'failure' and report['run']['failed_stage'] == 'collect'
    assert '401 Unauthorized' in report['run']['message']
    assert report['run']['last_success_at'] == before['run']['last_success_at']
    assert all(entry['way'] == 'not reached' for entry in report['load_balancers'].values())
    # the load balancers were not touched: their textfiles age, which the alerts catch
    assert textfiles == dict((host, lab.textfile(host).read_bytes()) for host in LOAD_BALANCERS)
    assert report['model']['generation'] == before['model']['generation']
    assert job_stats(events)['run']['failed_stage'] == 'collect'


def _server_state(lab, host, backend, server):
    rows = _status_view.read_stat(ask(str(lab.root / host / 'admin.sock'), 'show stat -1 4 -1'))
    return next((row['status'] for row in rows if row['pxname'] == backend and row['svname'] == server), None)


def test_the_status_view_shows_drift_and_each_servers_state(lab):
    backend = 'shop.web.%d' % lab.web_port
    # worker-2's stand-in stops answering: HAProxy's health checks take it DOWN
    lab.nodes['worker-2'].__exit__(None, None, None)
    deadline = time.monotonic() + 30
    while any(_server_state(lab, host, backend, 'worker-2') != 'DOWN' for host in LOAD_BALANCERS):
        assert time.monotonic() < deadline, 'HAProxy did not take worker-2 down'
        time.sleep(0.2)
    files = dict((p, (p.read_bytes(), p.stat().st_mtime_ns)) for host in LOAD_BALANCERS
                 for p in (lab.root / host).iterdir() if p.is_file() and p.suffix != '.log')
    runner, events = lab.run(playbook='playbooks/status.yml')
    assert runner.rc == 0, failed_output(events) or runner.stdout.read()
    results = ok_result(events, 'Read what this load balancer serves and the state of its servers (no lock, no change)')
    report = lab.report_now()
    for host in LOAD_BALANCERS:
        status = results[host]
        assert status['changed'] is False
        # the cluster changed since the last sync (the service the failed run could not install)
        assert status['drift']['state'] == 'changed', status['drift']
        # it serves the model of the last good run; the cluster gives the failed run's model
        assert status['installed']['generation'] == lab.records(host)['generation']
        assert status['drift']['current_generation'] == report['model']['generation'] != lab.records(host)['generation']
        assert status['installed']['source']['server'] == lab.api.url
        states = dict((entry['server'], entry['state']) for entry in status['servers'][backend])
        assert states == {'worker-1': 'UP', 'worker-2': 'DOWN'}
        assert status['server_states'] == {'UP': 1, 'DOWN': 1, 'DRAIN': 0, 'MAINT': 0, 'MISSING': 0}
        assert status['metrics'] == ['%s:%d' % (METRICS[host], lab.metrics_port)]
        view = '\n'.join(status['view'])
        assert 'drift: the cluster changed since this was installed' in view
        assert re.search(r'%s on [0-9.]+:%d: worker-1 UP, worker-2 DOWN \(L4' % (re.escape(backend), lab.web_port), view)
    shown = ok_result(events, 'Show it')
    assert shown['lb-a']['msg'] == results['lb-a']['view']
    # read-only: no lock taken, nothing written
    assert files == dict((p, (p.read_bytes(), p.stat().st_mtime_ns)) for host in LOAD_BALANCERS
                         for p in (lab.root / host).iterdir() if p.is_file() and p.suffix != '.log')


def _names(text, prefix):
    return set(re.findall(r'\b(%s[a-z0-9_]*)' % prefix, text))


def test_the_monitoring_examples_name_metrics_that_exist(lab):
    status, body = metrics_get(lab.metrics_port)
    assert status == 200
    exporter = set(line.split('{')[0].split(' ')[0] for line in body.splitlines() if line and not line.startswith('#'))
    ours = set(_report.METRIC_NAMES)
    written = set(line.split('{')[0].split(' ')[0] for line in lab.textfile('lb-a').read_text().splitlines()
                  if line and not line.startswith('#'))
    assert written <= ours
    examples = REPO / 'examples' / 'monitoring'
    dashboard = json.loads((examples / 'grafana-dashboard.json').read_text())
    alerts = yaml.safe_load((examples / 'prometheus-alerts.yml').read_text())
    scrape = yaml.safe_load((examples / 'prometheus-scrape.yml').read_text())
    assert scrape['scrape_configs'] and alerts['groups'][0]['rules']
    # the PromQL of every panel, variable and rule
    texts = [target['expr'] for panel in dashboard['panels'] for target in panel.get('targets', [])]
    texts += [variable['definition'] for variable in dashboard['templating']['list'] if 'definition' in variable]
    texts += [rule['expr'] for group in alerts['groups'] for rule in group['rules']]
    used = set().union(*(_names(text, 'haproxy_') for text in texts))
    used_ours = set().union(*(_names(text, 'portico_sync_') for text in texts))
    assert used and used_ours
    assert used <= exporter, sorted(used - exporter)
    assert used_ours <= ours, sorted(used_ours - ours)
    # the alerts an operator needs: sync failing, config stale, a backend with no server UP
    names = [rule['alert'] for rule in alerts['groups'][0]['rules']]
    assert {'PorticoSyncFailing', 'PorticoBackendWithoutServerUp', 'PorticoConfigStale'} <= set(names)
    assert [job for job in scrape['scrape_configs'] if job.get('metrics_path') == '/metrics']
