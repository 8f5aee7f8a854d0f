"""The built collection: the tarball installs, its docs render, and portico.k8s.sync runs from it."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.collection import build_and_install, run
from tests.support.haproxy import HAProxy, check_config, free_ports, minimal_config

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A clean Ansible environment with only the built tarball installed."""
    root = tmp_path_factory.mktemp('installed')
    env, tarball = build_and_install(root)
    return root, env, tarball


IMPORTER = REPO / '.venv-importer' / 'bin'


def test_galaxy_importer_imports_the_tarball_with_no_error_and_no_warning(installed, tmp_path):
    # as Galaxy imports it: the metadata, every plugin's documentation (ansible-doc), the
    # extensions, ansible-lint's production profile; ansible-test runs in tests/sanity
    (tmp_path / 'importer.cfg').write_text('[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\n'
                                           'LOG_LEVEL_MAIN = INFO\n')
    env = dict(installed[1], GALAXY_IMPORTER_CONFIG=str(tmp_path / 'importer.cfg'),
               PATH='%s:%s' % (IMPORTER, installed[1]['PATH']))
    result = subprocess.run([str(IMPORTER / 'python'), '-m', 'galaxy_importer.main', str(installed[2])], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and 'Importer processing completed successfully' in output, output
    problems = [line for line in output.splitlines() if line.startswith(('WARNING', 'ERROR'))]
    assert problems == [], output
    assert 'Linting collection via ansible-lint' in output and '...ansible-lint run complete' in output


def test_the_tarball_holds_the_plugins_role_and_playbook_and_nothing_local(installed):
    names = set(tarfile.open(installed[2]).getnames())
    for wanted in ('plugins/modules/nodeport_info.py', 'plugins/lookup/nodeports.py',
                   'plugins/module_utils/_model.py', 'plugins/modules/haproxy_config.py',
                   'plugins/action/haproxy_config.py',
                   'roles/haproxy_sync/templates/base.cfg.j2', 'roles/haproxy_sync/meta/argument_specs.yml',
                   'playbooks/sync.yml', 'meta/runtime.yml', 'LICENSE'):
        assert wanted in names
    assert 'meta/extensions.yml' in names and 'extensions/eda/plugins/event_source/nodeport_changes.py' in names
    # what users run, not how the project is developed
    assert not [n for n in names if n.startswith(('.venv', 'collection/', '.git/', 'demo/', 'bench/', 'scripts/'))]
    assert not names & {'Makefile', 'ansible.cfg', 'requirements-test.txt', 'requirements-importer.txt'}


@pytest.mark.parametrize('args,expected', [
    (['portico.k8s.nodeport_info'], 'api_key'),
    (['-t', 'lookup', 'portico.k8s.nodeports'], 'K8S_AUTH_HOST'),
    (['-t', 'role', 'portico.k8s.haproxy_sync'], 'haproxy_sync_config_path'),
    (['portico.k8s.haproxy_config'], 'runtime_socket'),
    (['portico.k8s.haproxy_lock'], 'DEPRECATED'),
])
def test_ansible_doc_renders_from_the_installed_collection(installed, args, expected):
    root, env, unused = installed
    result = run('ansible-doc', *args, env=env, cwd=root)
    assert expected in result.stdout
    assert 'ERROR' not in result.stdout + result.stderr


def test_the_sync_playbook_runs_from_the_installed_collection(installed):
    root, env, unused = installed
    address = '127.0.0.4'
    (root / 'lb').mkdir()
    config = root / 'lb' / 'haproxy.cfg'
    config.write_text(minimal_config(root / 'lb' / 'admin.sock'))
    port = free_ports(1, 20000, 29999, [address])[0]
    snapshot = json.loads((REPO / 'examples' / 'demo' / 'cluster.json').read_text())
    for item in snapshot['items']:
        if item['kind'] == 'Service' and item['metadata']['name'] == 'storefront':
            item['spec']['ports'][0]['port'] = port
    (root / 'cluster.json').write_text(json.dumps(snapshot))
    with HAProxy(config, root / 'lb' / 'haproxy.pid') as proxy:
        inventory = {'all': {
            'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                     'haproxy_sync_snapshot': str(root / 'cluster.json'),
                     'haproxy_sync_drain_state_file': str(root / 'drain-state.json')},
            'hosts': {'localhost': {}},
            'children': {'loadbalancers': {'hosts': {'lb': {
                'haproxy_sync_config_path': str(config), 'haproxy_sync_bind_address': address,
                'haproxy_sync_stats_socket': str(root / 'lb' / 'admin.sock'),
                'haproxy_sync_reload_command': '/bin/kill -USR2 %d' % proxy.master_pid,
                'haproxy_sync_config_owner': '{{ omit }}', 'haproxy_sync_config_group': '{{ omit }}',
                'haproxy_sync_chroot': '', 'haproxy_sync_user': '', 'haproxy_sync_group': '',
                'haproxy_sync_log_target': ''}}}}}}
        (root / 'inventory.json').write_text(json.dumps(inventory))
        before = proxy.state()
        result = run('ansible-playbook', '-i', str(root / 'inventory.json'), 'portico.k8s.sync', env=env, cwd=root)
        assert 'TASK [portico.k8s.haproxy_sync : Bring HAProxy on this load balancer to the routing model]' in result.stdout
        proxy.wait_reloaded(before)
    assert 'bind %s:%d' % (address, port) in config.read_text()
    assert check_config(config).returncode == 0
