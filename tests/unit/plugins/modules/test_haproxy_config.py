"""portico.k8s.haproxy_config run as Ansible runs a module (a separate process reading its
arguments from a JSON file) against a real HAProxy in master-worker mode on 127.0.0.0/8."""

import contextlib
import glob
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _config, _haproxy, _model, _names, _report
from tests.support.haproxy import HAProxy, free_ports, http_get, minimal_config

MODULE = Path(__file__).resolve().parents[4] / 'plugins' / 'modules' / 'haproxy_config.py'
# what holds ansible_collections/portico/k8s: collection/ in a checkout, the tree ansible-test builds
COLLECTIONS = Path(os.path.abspath(_names.__file__)).parents[5]
LB = '127.0.0.31'
NODE_ADDRESS = '127.0.2.31'


def node(name, address):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', address]], 'labels': {}, 'taints': [],
            'unschedulable': False, 'deleting': False}


def service(name, port, node_port):
    return {'namespace': 'shop', 'name': name, 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': port, 'node_port': node_port}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None, 'annotations': {}}


def model(ports, read_at=1000.0):
    built = _model.build_model([node('w1', NODE_ADDRESS)], [service('s%d' % i, port, 30000 + i)
                                                            for i, port in enumerate(ports)],
                               {}, {'kind': 'snapshot', 'snapshot': 'c.json'})
    built['source']['read_at'] = read_at
    return built


class Host:
    """One load balancer: its directory, a running HAProxy and a way to call the module on it."""

    def __init__(self, root, proxy):
        self.root, self.proxy = root, proxy
        self.config = root / 'haproxy.cfg'
        self.socket = root / 'admin.sock'
        self.base = minimal_config(self.socket)

    def call(self, the_model, check_mode=False, diff=False, **args):
        params = dict(path=str(self.config), base=self.base, model=the_model, bind_address=LB,
                      reload_command='/bin/kill -USR2 %d' % self.proxy.master_pid, reload_timeout=5,
                      cert_dir=str(self.root / 'certs'), load_balancer='lb-test', lock_timeout=1)
        params.update(args)
        params.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        path = self.root / ('args-%d.json' % time.monotonic_ns())
        path.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
        # a temporary directory of this host's own: the test looks into it, never into the shared /tmp
        (self.root / 'tmp').mkdir(exist_ok=True)
        before = self.proxy.state() if self.proxy.is_running() else None
        done = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(COLLECTIONS), TMPDIR=str(self.root / 'tmp')),
                              check=False)
        path.unlink()
        result = json.loads(done.stdout)
        # the old workers of a reload finish on their own time: a state read next must not see them go
        if before is not None and result.get('reloaded') and self.proxy.is_running():
            self.proxy.wait_reloaded(before)
        return result

    def expected(self, the_model):
        return _config.compose(self.base, _haproxy.render(the_model, LB, str(self.root / 'certs')))

    def files(self):
        return dict((p.name, p.read_bytes()) for p in self.root.iterdir() if p.is_file() and p.suffix != '.log')


@pytest.fixture
def host(tmp_path):
    root = tmp_path / 'lb'
    root.mkdir()
    (root / 'haproxy.cfg').write_text(minimal_config(root / 'admin.sock'))
    with HAProxy(root / 'haproxy.cfg', root / 'haproxy.pid') as proxy:
        yield Host(root, proxy)


@pytest.fixture
def ports():
    return free_ports(3, 21000, 21999, [LB])


def test_a_sync_installs_reloads_and_names_the_new_worker_and_the_next_changes_nothing(host, ports):
    before = host.proxy.state()
    result = host.call(model(ports[:2]))
    assert not result.get('failed'), result
    assert result['changed'] and result['reloaded'] and not result['restored']
    assert int(result['worker']) in host.proxy.state().workers and int(result['worker']) not in before.workers
    assert result['msg'] == ('lb-test: installed the new %s and reloaded HAProxy, because the current file has no '
                             'generated part; worker %s serves it.') % (
        host.config, result['worker'])
    assert host.config.read_text() == host.expected(model(ports[:2]))
    assert Path(result['backup_file']).read_text() == host.base
    recorded = json.loads(Path(str(host.config) + '.portico-state').read_text())
    # and what it served (2 backends, 1 node), for the safety valve
    assert recorded.pop('recorded_at') <= time.time() and [entry[1:] for entry in recorded.pop('peaks')] == [[2, 1]]
    # and what the file serves, for the status view: the model's generation, source and counts, and since when
    serves = recorded.pop('serves')
    assert serves.pop('installed_at') <= time.time()
    assert serves == {'generation': result['generation'], 'source': {'kind': 'snapshot', 'snapshot': 'c.json',
                                                                     'read_at': 1000.0},
                      'counts': {'frontends': 2, 'backends': 2, 'eligible_nodes': 1, 'draining_nodes': 0,
                                 'excluded_nodes': 0, 'excluded_services': 0}}
    assert recorded == {'model_read_at': 1000.0}
    assert not Path(str(host.config) + '.portico-lock').exists()
    socket.create_connection((LB, ports[0]), timeout=2).close()  # the new worker binds the new frontend
    files, state = host.files(), host.proxy.state()
    again = host.call(model(ports[:2], read_at=2000.0))
    assert not again['changed'] and not again['reloaded'], again
    assert again['msg'] == 'lb-test: %s is up to date; nothing was changed.' % host.config
    # only the record of the newer model it saw (an older run waiting on the lock then leaves the host alone)
    state_file = 'haproxy.cfg.portico-state'
    assert json.loads(host.files()[state_file])['model_read_at'] == 2000.0
    assert dict(host.files(), **{state_file: None}) == dict(files, **{state_file: None})
    assert host.proxy.state() == state


def test_a_reload_the_old_worker_survives_counts_as_failed_and_the_previous_file_comes_back(host, ports):
    host.call(model(ports[:1]))
    previous, state = host.config.read_bytes(), host.proxy.state()
    # the command succeeds, but HAProxy never loads the new file: the old worker keeps answering
    result = host.call(model(ports[:2]), reload_command='/bin/true', reload_timeout=1)
    assert result['failed'] and result['restored'] and not result['reloaded']
    assert 'no new HAProxy worker served the new configuration' in result['msg']
    assert 'the old worker (pid %d) still answers' % min(state.workers) in result['msg']
    assert 'The previous configuration was put back, but reloading it failed too' in result['msg']
    assert result['msg'].startswith('lb-test: Reloading HAProxy failed')
    assert host.config.read_bytes() == previous and host.proxy.state() == state
    assert not Path(str(host.config) + '.portico-lock').exists()


def test_a_failed_reload_command_restores_even_without_a_backup_and_reloads_it(host, ports):
    host.call(model(ports[:1]))
    previous, state = host.config.read_bytes(), host.proxy.state()
    mark = host.root / 'failed-once'
    script = host.root / 'reload.sh'
    # fails the first time, reloads the second
    script.write_text('#!/bin/sh\nif [ ! -e %s ]; then touch %s; exit 3; fi\nexec /bin/kill -USR2 %d\n'
                      % (mark, mark, host.proxy.master_pid))
    script.chmod(0o755)
    result = host.call(model(ports[:2]), reload_command=str(script), backup=False)
    assert result['failed'] and result['restored'] and 'backup_file' not in result
    assert 'the reload command exited 3' in result['msg']
    assert 'The previous configuration was put back and reloaded.' in result['msg']
    assert host.config.read_bytes() == previous
    host.proxy.wait_reloaded(state)


def test_a_refused_candidate_changes_nothing_and_says_why(host, ports):
    host.call(model(ports[:1]))
    files, state = host.files(), host.proxy.state()
    result = host.call(model(ports[:2]), base=host.base + '    no-such-keyword-here\n')
    assert result['failed'] and 'failed to validate' in result['msg'] and 'no-such-keyword-here' in result['msg']
    assert 'the current file stays in place and HAProxy was not reloaded' in result['msg']
    assert host.files() == files and host.proxy.state() == state
    assert not glob.glob(str(host.root / '.portico-*'))


def test_check_mode_validates_shows_the_diff_and_changes_nothing(host, ports):
    host.call(model(ports[:1]))
    files, state = host.files(), host.proxy.state()
    result = host.call(model(ports[:2]), check_mode=True, diff=True)
    assert result['changed'] and not result.get('failed'), result
    assert 'passes the validate command: Configuration file is valid' in result['msg']
    assert '+backend shop.s1.%d' % ports[1] not in result['diff'][0]['before']
    assert 'backend shop.s1.%d' % ports[1] in result['diff'][0]['after']
    assert host.files() == files and host.proxy.state() == state
    # the check's temporary directory is gone again
    assert list((host.root / 'tmp').iterdir()) == []
    refused = host.call(model(ports[:2]), check_mode=True, base=host.base + '    no-such-keyword-here\n')
    assert refused['failed'] and 'would be refused' in refused['msg'] and 'no-such-keyword-here' in refused['msg']


HASH = '$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.'


def test_the_metrics_frontend_is_installed_its_hashes_never_shown_and_every_run_is_counted(host, ports):
    textfile = str(host.root / 'portico.prom')
    metrics = {'address': '127.0.0.32', 'port': ports[2], 'users': [{'name': 'prometheus', 'password': HASH}]}
    checked = host.call(model(ports[:1]), check_mode=True, diff=True, metrics=metrics, textfile=textfile)
    assert checked['changed'] and not checked.get('failed'), checked
    assert HASH not in json.dumps(checked) and '    user prometheus password <hidden>\n' in checked['diff'][0]['after']
    assert not os.path.exists(textfile)  # a check writes nothing
    done = host.call(model(ports[:1]), metrics=metrics, textfile=textfile)
    assert done['reloaded'] and HASH not in json.dumps(done), done
    assert 'frontend portico_metrics\n    mode http\n    bind 127.0.0.32:%d\n' % ports[2] in host.config.read_text()
    assert http_get('127.0.0.32', ports[2], '/metrics')[0] == 401  # basic auth
    first = _report.read_textfile(Path(textfile).read_text())
    assert first['success'] and first['reloads'] == 1 and first['generation'] == done['generation']
    # a refused candidate: the failure is counted, the last success kept
    refused = host.call(model(ports[:2]), base=host.base + '    no-such-keyword-here\n', metrics=metrics,
                        textfile=textfile)
    assert refused['failed']
    after = _report.read_textfile(Path(textfile).read_text())
    assert not after['success'] and after['failures'] == 1 and after['last_success_at'] == first['last_success_at']
    assert after['generation'] == first['generation'] and after['counts'] == first['counts']
    # settings that cannot be fail before anything is touched
    files = host.files()
    wildcard = host.call(model(ports[:2]), metrics=dict(metrics, address='*'))
    assert wildcard['failed'] and 'would serve the metrics on every address' in wildcard['msg'], wildcard
    plain = host.call(model(ports[:2]), metrics=dict(metrics, users=[{'name': 'prometheus', 'password': 'hunter2'}]))
    assert plain['failed'] and 'must be a crypt(3) hash' in plain['msg'] and 'hunter2' not in json.dumps(plain)
    not_prom = host.call(model(ports[:2]), textfile=str(host.root / 'portico.txt'))
    assert not_prom['failed'] and 'must end in .prom' in not_prom['msg']
    assert host.files() == files


@pytest.mark.parametrize('check_mode', [True, False])
def test_a_missing_config_directory_is_said_in_check_mode_as_a_real_run_fails(host, ports, check_mode):
    missing = host.root / 'no-such-dir' / 'haproxy.cfg'
    result = host.call(model(ports[:1]), check_mode=check_mode, path=str(missing))
    assert result['failed'] and not result['changed'], result
    assert result['msg'].startswith('lb-test: the directory %s of %s does not exist, so %s: create it'
                                    % (missing.parent, missing, 'a real run would fail' if check_mode
                                       else 'the new file cannot be written'))
    assert 'passes' not in result['msg'] and not missing.parent.exists()


@pytest.mark.parametrize('check_mode', [True, False])
def test_a_validate_program_that_is_not_there_is_named(host, ports, check_mode):
    host.call(model(ports[:1]))
    files, state = host.files(), host.proxy.state()
    for program, where in (('no-such-haproxy', 'not on PATH, nor in /sbin, /usr/sbin, /usr/local/sbin'),
                           (str(host.root / 'bin' / 'haproxy'), 'no executable file there')):
        result = host.call(model(ports[:2]), check_mode=check_mode, validate='%s -c -f %%s' % program)
        assert result['failed'] and 'would be refused' not in result['msg'] and '%s' not in result['msg'], result
        assert result['msg'] == (
            "lb-test: the validate command's program '%s' was not found on this host (%s), so the new configuration "
            'cannot be checked; install HAProxy or set validate (haproxy_sync_validate_command); %s'
            % (program, where, 'a real run would fail the same way and change nothing' if check_mode
               else '%s was not changed' % host.config))
        assert host.files() == files and host.proxy.state() == state


def test_a_refusal_without_output_says_so_and_shows_the_command_without_its_placeholder(host, ports):
    host.call(model(ports[:1]))
    result = host.call(model(ports[:2]), check_mode=True, validate='/bin/false %s')
    assert result['failed'] and result['msg'] == (
        "lb-test: the new configuration would be refused by '/bin/false <candidate>' (exit 1), and a real run would "
        'leave the current one in place: no output')
    result = host.call(model(ports[:2]), validate='/bin/sh -c "exit 127" %s')
    assert result['failed'] and ("failed to validate with '/bin/sh -c \"exit 127\" <candidate>' (exit 127)"
                                 in result['msg']), result
    assert result['msg'].endswith('HAProxy was not reloaded: exit 127 means a command was not found: no output')


def test_a_host_that_has_a_newer_model_is_left_alone_unless_forced(host, ports):
    host.call(model(ports[:1], read_at=5000.0))
    files = host.files()
    result = host.call(model(ports[:2], read_at=4000.0))
    assert result['outdated'] and not result['changed']
    assert result['msg'].startswith('lb-test already has a model read from the cluster at 5000.000')
    assert host.files() == files
    forced = host.call(model(ports[:2], read_at=4000.0), force=True)
    assert forced['changed'] and forced['reloaded']


def test_the_safety_valve_refuses_to_remove_most_backends(host, ports):
    host.call(model(ports))
    files, state = host.files(), host.proxy.state()
    result = host.call(model(ports[:1]))
    assert result['failed'] and 'Refusing to remove 2 of the 3 backends in %s' % host.config in result['msg']
    assert host.files() == files and host.proxy.state() == state
    assert host.call(model(ports[:1]), max_removal_ratio=0.7)['reloaded']


def test_a_held_lock_fails_cleanly_and_is_left_alone(host, ports):
    lock = Path(str(host.config) + '.portico-lock')
    lock.mkdir()
    try:
        result = host.call(model(ports[:1]))
        assert result['failed'] and 'Another run holds %s' % lock in result['msg']
        assert 'nothing was changed here' in result['msg'] and lock.is_dir()
        assert host.config.read_text() == host.base
    finally:
        lock.rmdir()


def test_without_a_stats_socket_a_frontend_is_probed_and_the_module_warns(host, ports):
    base = host.base.replace('    stats socket %s mode 660 level admin expose-fd listeners\n' % host.socket, '')
    assert 'stats socket' not in base
    result = host.call(model(ports[:1]), base=base)
    assert result['reloaded'] and 'worker' not in result or result['worker'] is None
    assert 'only a TCP connect' in json.dumps(result['warnings'])


def test_the_file_gets_its_mode_and_a_model_the_renderer_refuses_is_never_written(host, ports):
    result = host.call(model(ports[:1]), mode='0640')
    assert stat.S_IMODE(os.stat(host.config).st_mode) == 0o640 and result['reloaded']
    bad = model(ports[:2])
    bad['nodes'][0]['address'] = '127.0.2.31\n    program x'
    files = host.files()
    refused = host.call(bad)
    assert refused['failed'] and 'the model was refused' in refused['msg'] and host.files() == files
    with contextlib.suppress(FileNotFoundError):
        assert not os.listdir(host.root / 'certs')


def test_a_file_left_in_place_by_a_failed_first_reload_is_reloaded_by_the_next_run(host, ports):
    host.config.unlink()
    failed = host.call(model(ports[:1]), reload_command='/bin/false')
    assert failed['failed'] and 'no previous' in failed['msg'] and 'marked unverified' in failed['msg']
    state = host.proxy.state()
    # the same model again: the file is in place, but no worker was seen serving it
    again = host.call(model(ports[:1]))
    assert again['changed'] and again['reloaded'], again
    host.proxy.wait_reloaded(state)
    assert 'unverified' not in json.loads(Path(str(host.config) + '.portico-state').read_text())
    assert not host.call(model(ports[:1]))['changed']


def test_a_reload_command_that_cannot_be_split_changes_nothing(host, ports):
    files = host.files()
    result = host.call(model(ports[:1]), reload_command='kill "')
    assert result['failed'] and 'cannot be split into words' in result['msg'] and host.files() == files


def test_the_previous_file_comes_back_with_its_own_mode(host, ports):
    host.call(model(ports[:1]), mode='0640')
    result = host.call(model(ports[:2]), mode='0600', reload_command='/bin/false')
    assert result['restored'] and stat.S_IMODE(os.stat(host.config).st_mode) == 0o640
