"""playbooks/sync.yml run the way AWX runs a job: through ansible-runner, in an AWX-shaped private data dir.

The collection is installed as AWX's project sync installs it (``ansible-galaxy collection install
-r collections/requirements.yml`` from the project root into ``requirements_collections``), and the
job sees only that directory on ANSIBLE_COLLECTIONS_PATH. The Kubernetes connection comes only from
the variables AWX's "OpenShift or Kubernetes API Bearer Token" credential injects, with the CA
certificate in a file under ``env/`` and K8S_AUTH_VERIFY_SSL spelled ``True``, as AWX writes them.
The survey's variables arrive as extra vars. A check job (``--check --diff``, AWX's job type
*Check* with *Show Changes*) answering one namespace runs first, then a run job and a second run
job with the survey's defaults, as the schedule launches them. The tests run in file order on one lab.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI
from tests.support.haproxy import free_ports, start_load_balancers
from tests.support.inventory import inventory, load_balancer

ansible_runner = pytest.importorskip('ansible_runner')

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOAD_BALANCERS = {'lb-a': '127.0.0.5', 'lb-b': '127.0.0.6'}
NODES = {'worker-1': '127.0.1.1', 'worker-2': '127.0.1.2'}
# One task per load balancer: validate, install, reload.
INSTALL_TASK = 'Bring HAProxy on this load balancer to the routing model'
# What the survey of examples/awx/job_templates.yml sends unanswered (a scheduled run), and with a namespace.
SURVEY_DEFAULTS = {q['variable']: q['default'] for q in yaml.safe_load(
    (REPO / 'examples' / 'awx' / 'job_templates.yml').read_text())['portico_awx']['survey']['spec']}
SHOP_ONLY = {**SURVEY_DEFAULTS, 'haproxy_sync_namespaces': 'shop'}


class AWXLab:
    def __init__(self, root, api, frontend_ports, node_port):
        self.root, self.api = root, api
        self.web_port, self.admin_port = frontend_ports
        self.node_port = node_port
        # Project sync output: AWX keeps it per project revision and copies it into every job.
        self.collections = root / 'project_cache' / 'requirements_collections'
        self.proxies = {}

    def config(self, host):
        return self.root / host / 'haproxy.cfg'

    def project_sync(self):
        """What AWX's project update does with collections/requirements.yml."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8S_AUTH_'))}
        env.update({'ANSIBLE_COLLECTIONS_PATH': str(self.collections), 'ANSIBLE_NOCOLOR': '1',
                    'ANSIBLE_LOCAL_TEMP': str(self.root / 'tmp')})
        result = subprocess.run(
            [str(BIN / 'ansible-galaxy'), 'collection', 'install', '-r', str(REPO / 'collections' / 'requirements.yml')],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def private_data_dir(self, ident):
        """A fresh private data dir per job, as AWX makes one (ansible-runner keeps env/cmdline in it)."""
        private = self.root / 'jobs' / ident
        (private / 'env').mkdir(parents=True)
        (private / 'inventory').mkdir()
        # AWX copies the project revision to <private_data_dir>/project and runs the playbook from there,
        # with the project sync's collections in <private_data_dir>/requirements_collections.
        (private / 'project').symlink_to(REPO, target_is_directory=True)
        (private / 'requirements_collections').symlink_to(self.collections, target_is_directory=True)
        (private / 'inventory' / 'hosts.json').write_text(json.dumps(self.inventory()))
        return private

    def inventory(self):
        hosts = dict((host, load_balancer(self.root / host, address, self.proxies[host].master_pid))
                     for host, address in LOAD_BALANCERS.items())
        return inventory(hosts, self.root)

    def credential_env(self, private):
        """The environment AWX's Kubernetes bearer-token credential injects (CA written to a 0600 file)."""
        handle, path = tempfile.mkstemp(dir=private / 'env')
        with os.fdopen(handle, 'w') as ca_file:
            ca_file.write(Path(self.api.ca_path).read_text())
        return {'K8S_AUTH_HOST': self.api.url, 'K8S_AUTH_API_KEY': self.api.token,
                'K8S_AUTH_VERIFY_SSL': 'True', 'K8S_AUTH_SSL_CA_CERT': path}

    def job(self, ident, cmdline='', extravars=None):
        private = self.private_data_dir(ident)
        envvars = {
            # AWX puts the project's installed requirements first on the collections path.
            'ANSIBLE_COLLECTIONS_PATH': str(private / 'requirements_collections'),
            'ANSIBLE_LOCAL_TEMP': str(self.root / 'tmp'), 'ANSIBLE_REMOTE_TEMP': str(self.root / 'tmp'),
            'ANSIBLE_NOCOLOR': '1',
            'PATH': '%s:%s:/usr/sbin:/sbin' % (BIN, os.environ.get('PATH', '')),
            **self.credential_env(private),
        }
        # ansible-runner passes its own environment on; keep the caller's Ansible and Kubernetes settings out.
        clean = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8S_AUTH_'))}
        with _environ(clean):
            runner = ansible_runner.run(
                private_data_dir=str(private), ident=ident, playbook='playbooks/sync.yml',
                inventory=str(private / 'inventory' / 'hosts.json'), envvars=envvars,
                extravars=dict(SURVEY_DEFAULTS if extravars is None else extravars), cmdline=cmdline, quiet=True, timeout=180)
        return runner, list(runner.events)

    def files_and_processes(self, records=True):
        """The load balancers' files and HAProxy processes; records=False leaves out .portico-state, where
        a run that changes nothing still records the newer model it saw."""
        files = {p: p.read_bytes() for host in LOAD_BALANCERS for p in (self.root / host).iterdir()
                 if p.is_file() and (records or not p.name.endswith('.portico-state'))}
        return files, {host: proxy.state() for host, proxy in self.proxies.items()}


@contextlib.contextmanager
def _environ(values):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def ok_events(events, task):
    """{host: event_data} of the runner_on_ok events of one task."""
    return {e['event_data']['host']: e['event_data'] for e in events
            if e['event'] == 'runner_on_ok' and e['event_data'].get('task') == task}


def stats(events):
    found = [e['event_data'] for e in events if e['event'] == 'playbook_on_stats']
    assert len(found) == 1
    return found[0]


def assert_successful(runner, events):
    failed = [e.get('stdout', '') for e in events if e['event'] in ('runner_on_failed', 'runner_on_unreachable')]
    assert runner.status == 'successful' and runner.rc == 0, '\n'.join(failed) or runner.stdout.read()


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('awx')
    frontend_ports = free_ports(2, 20000, 29999, list(LOAD_BALANCERS.values()))
    node_port = free_ports(1, 30000, 32767, list(NODES.values()))[0]
    with FakeKubeAPI(root / 'certs') as api, contextlib.ExitStack() as stack:
        lab = AWXLab(root, api, frontend_ports, node_port)
        api.load_list(objects.cluster_list(
            [objects.node(name, internal_ips=address) for name, address in NODES.items()]
            + [objects.service('web', 'shop', type='NodePort',
                               ports=[objects.service_port(lab.web_port, name='http', node_port=node_port)]),
               objects.service('admin', 'ops', type='NodePort',
                               ports=[objects.service_port(lab.admin_port, name='https')])]))
        lab.proxies.update(start_load_balancers(stack, root, LOAD_BALANCERS))
        lab.project_sync()
        yield lab


def test_project_sync_installs_the_collection_from_the_project(lab):
    installed = lab.collections / 'ansible_collections' / 'portico' / 'k8s'
    assert json.loads((installed / 'MANIFEST.json').read_text())['collection_info']['name'] == 'k8s'
    for wanted in ('playbooks/sync.yml', 'roles/haproxy_sync/tasks/main.yml', 'plugins/modules/nodeport_info.py',
                   'meta/execution-environment.yml', 'requirements.txt', 'bindep.txt'):
        assert (installed / wanted).is_file(), wanted
    assert not (installed / '.venv').exists() and not (installed / 'collection').exists()


def test_a_check_job_shows_the_diff_and_changes_nothing(lab):
    before = lab.files_and_processes()
    runner, events = lab.job('check', cmdline='--check --diff', extravars=SHOP_ONLY)
    assert_successful(runner, events)

    installs = ok_events(events, INSTALL_TASK)
    assert set(installs) == set(LOAD_BALANCERS)
    for host, data in installs.items():
        assert data['res']['changed'] is True, host
        # The role comes from the collection the project sync installed, not from the checkout.
        assert '/requirements_collections/ansible_collections/portico/k8s/roles/' in data['task_path']
        assert not data['task_path'].startswith(str(REPO))
    # AWX's "Show Changes": one runner_on_file_diff event per host, its stdout the unified diff.
    diffs = {e['event_data']['host']: e for e in events
             if e['event'] == 'runner_on_file_diff' and e['event_data'].get('task') == INSTALL_TASK}
    assert set(diffs) == set(LOAD_BALANCERS)
    for host, event in diffs.items():
        text = event['stdout'].replace('\r\n', '\n')
        assert '--- before: %s' % lab.config(host) in text
        assert '+frontend shop.web.%d' % lab.web_port in text
        assert '+    server worker-1 127.0.1.1:%d check' % lab.node_port in text
        assert 'ops.admin' not in text  # outside the namespace the survey selected
        assert event['event_data']['diff'][0]['before'] == lab.config(host).read_text()
    validated = {host for host, data in installs.items() if 'passes the validate command' in data['res']['msg']}
    assert validated == set(LOAD_BALANCERS)

    summary = stats(events)
    assert not summary['failures'] and not summary['dark']
    assert summary['changed'].get('lb-a') and summary['changed'].get('lb-b')
    assert lab.files_and_processes() == before


def test_a_run_job_installs_and_reloads_every_load_balancer(lab):
    before = {host: proxy.state() for host, proxy in lab.proxies.items()}
    runner, events = lab.job('run')
    assert_successful(runner, events)
    installs = ok_events(events, INSTALL_TASK)
    assert {host: data['res']['changed'] for host, data in installs.items()} == {'lb-a': True, 'lb-b': True}
    reloaded = {host for host, data in installs.items() if data['res']['reloaded'] and data['res']['worker']}
    assert reloaded == set(LOAD_BALANCERS)
    summary = stats(events)
    assert not summary['failures'] and not summary['dark']
    assert summary['changed'].get('lb-a', 0) >= 1 and summary['changed'].get('lb-b', 0) >= 1
    for host, proxy in lab.proxies.items():
        proxy.wait_reloaded(before[host])
        text = lab.config(host).read_text()
        # The run job launched with the survey's defaults, as the schedule does: every namespace.
        assert 'frontend shop.web.%d' % lab.web_port in text and 'frontend ops.admin.%d' % lab.admin_port in text


def test_the_next_run_job_changes_nothing(lab):
    before = lab.files_and_processes(records=False)
    runner, events = lab.job('rerun')
    assert_successful(runner, events)
    installs = ok_events(events, INSTALL_TASK)
    assert {host: data['res']['changed'] for host, data in installs.items()} == {'lb-a': False, 'lb-b': False}
    summary = stats(events)
    assert not summary['failures'] and not summary['dark']
    assert not summary['changed'].get('lb-a') and not summary['changed'].get('lb-b')
    assert lab.files_and_processes(records=False) == before


# AWX sends a blank optional text answer as "" (older releases, and the defaults the runs above use),
# or null (24.x); newer releases leave it out.
def test_a_null_survey_answer_means_no_restriction(lab):
    before = lab.files_and_processes()
    runner, events = lab.job('blank-null', cmdline='--check --diff', extravars=dict.fromkeys(SURVEY_DEFAULTS))
    assert lab.files_and_processes() == before
    assert_successful(runner, events)
    installs = ok_events(events, INSTALL_TASK)
    assert {host: data['res']['changed'] for host, data in installs.items()} == {'lb-a': False, 'lb-b': False}
