"""portico.k8s.haproxy_config under injected faults: a run killed mid-way, a
lock its holder left behind, a reload command that hangs, a clock that runs ahead, racing runs,
a full disk, a ratchet of removals; against a real HAProxy as in test_haproxy_config."""

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.portico.k8s.plugins.module_utils import _model
from tests.support.haproxy import free_ports, is_alive
# host and ports are fixtures: imported, they serve the tests here
from tests.unit.plugins.modules.test_haproxy_config import (  # pylint: disable=unused-import
    COLLECTIONS,
    LB,
    MODULE,
    host,
    model,
    node,
    ports,
    service,
)


def state_of(host):
    return json.loads(Path(str(host.config) + '.portico-state').read_text())


def raw(host, the_model, preexec_fn=None, **args):
    """Call the module as Host.call does; the finished process, whatever became of it."""
    params = dict(path=str(host.config), base=host.base, model=the_model, bind_address=LB,
                  reload_command='/bin/kill -USR2 %d' % host.proxy.master_pid, reload_timeout=5,
                  cert_dir=str(host.root / 'certs'), load_balancer='lb-test', lock_timeout=1)
    params.update(args)
    path = host.root / ('args-%d.json' % time.monotonic_ns())
    path.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
    (host.root / 'tmp').mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(COLLECTIONS), TMPDIR=str(host.root / 'tmp')),
                          check=False, preexec_fn=preexec_fn)
    path.unlink()
    return done


def killed(host, the_model, **args):
    """Call the module with a reload command that kills it (SIGKILL) once the new file is in place."""
    args.setdefault('reload_command', "/bin/sh -c 'kill -KILL $PPID; sleep 5'")
    done = raw(host, the_model, **args)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)
    return done


def serves(port):
    try:
        socket.create_connection((LB, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_a_run_killed_between_the_rename_and_the_reload_is_reloaded_by_the_next_run(host, ports):
    assert host.call(model(ports[:1]))['reloaded']
    state = host.proxy.state()
    killed(host, model(ports[:2], read_at=2000.0))
    # the new file is in place, HAProxy never loaded it, and the record says so
    assert host.config.read_text() == host.expected(model(ports[:2], read_at=2000.0))
    assert host.proxy.state() == state and not serves(ports[1])
    assert state_of(host)['unverified']
    shutil.rmtree(str(host.config) + '.portico-lock')  # the killed run's lock (see the lock tests)
    again = host.call(model(ports[:2], read_at=2000.0))
    assert again['changed'] and again['reloaded'], again
    assert again['reload_reason'] == 'the installed file was never seen serving'
    assert serves(ports[1]) and 'unverified' not in state_of(host)
    assert not host.call(model(ports[:2], read_at=2000.0))['changed']


def test_the_lock_of_a_killed_run_is_taken_away_at_once_saying_whose_it_was(host, ports):
    assert host.call(model(ports[:1]))['reloaded']
    done = killed(host, model(ports[:2], read_at=2000.0))
    lock = Path(str(host.config) + '.portico-lock')
    holder = json.loads((lock / 'owner').read_text())
    assert holder['host'] == socket.gethostname() and holder['boot_id'] and holder['start'] and holder['pid']
    del done
    started = time.monotonic()
    again = host.call(model(ports[:2], read_at=2000.0))  # lock_timeout=1, lock_stale_seconds 1800
    assert time.monotonic() - started < 10 and again['lock_waited'] < 1
    assert again['stale_lock_removed'] and again['reloaded'], again
    warning = json.dumps(again['warnings'])
    assert 'Took away the lock %s: its holder, process %d on %s' % (lock, holder['pid'], holder['host']) in warning
    assert 'is gone: no such process runs' in warning
    assert not lock.exists() and serves(ports[1])


def test_a_hanging_reload_command_is_killed_the_previous_file_put_back_and_the_lock_released(host, ports):
    assert host.call(model(ports[:1]))['reloaded']
    previous, state = host.config.read_bytes(), host.proxy.state()
    mark, pid = host.root / 'hung-once', host.root / 'hung.pid'
    script = host.root / 'reload.sh'
    # hangs the first time (a child of its own too), reloads the second
    script.write_text('#!/bin/sh\nif [ ! -e %s ]; then touch %s; sleep 600 & echo $! > %s; wait; fi\n'
                      'exec /bin/kill -USR2 %d\n' % (mark, mark, pid, host.proxy.master_pid))
    script.chmod(0o755)
    started = time.monotonic()
    result = host.call(model(ports[:2]), reload_command=str(script), reload_timeout=2)
    assert time.monotonic() - started < 20
    assert result['failed'] and result['restored'] and not result['reloaded'], result
    assert ('Reloading HAProxy failed (the reload command hung: %s did not finish within 2 seconds and was killed '
            '(haproxy_sync_reload_timeout)). The previous configuration was put back and reloaded.' % script) \
        in result['msg']
    assert host.config.read_bytes() == previous
    host.proxy.wait_reloaded(state)
    assert not Path(str(host.config) + '.portico-lock').exists()
    # the command's own child went with it (a zombie at most, where no init reaps orphans)
    assert not is_alive(int(pid.read_text()))


def api_model(ports, version, read_at):
    built = model(ports, read_at=read_at)
    built['source'] = {'kind': 'api', 'server': 'https://k8s.test:6443', 'resource_version': version,
                       'read_at': read_at}
    return built


def test_a_run_whose_clock_runs_an_hour_ahead_does_not_make_correct_runs_skip_the_host(host, ports):
    now = time.time()
    ahead = host.call(api_model(ports[:1], '500', now + 3600))
    assert ahead['reloaded'] and state_of(host)['resource_version'] == '500'
    # read later by the cluster's count, earlier by the (correct) clock
    correct = host.call(api_model(ports[:2], '600', now))
    assert not correct['outdated'] and correct['reloaded'], correct
    # and an older model stays out, whatever its clock says
    older = host.call(api_model(ports[:1], '550', now + 7200))
    assert older['outdated'] and not older['changed']
    assert older['msg'] == ('lb-test already has a model read from the cluster at resourceVersion 600, later than '
                            'this run\'s (550); nothing is changed here (haproxy_sync_force=true installs this run\'s '
                            'model anyway).')
    # from a snapshot, only the clocks tell: one that ran ahead is recognised by the host's clock
    host.call(model(ports[:1], read_at=now + 3600))
    snapshot = host.call(model(ports[:2], read_at=now))
    assert snapshot['reloaded'], snapshot
    assert 'the clock of the controller that read it runs ahead' in json.dumps(snapshot['warnings'])


def test_a_record_holding_infinity_freezes_nothing(host, ports):
    assert host.call(model(ports[:1]))['reloaded']
    Path(str(host.config) + '.portico-state').write_text('{"model_read_at": Infinity}\n')
    result = host.call(model(ports[:2], read_at=time.time()))
    assert not result['outdated'] and result['reloaded'], result
    assert 'holds a model time that is not a finite number (inf)' in json.dumps(result['warnings'])
    assert state_of(host)['model_read_at'] < time.time()


def test_a_no_op_run_records_its_newer_model_so_an_older_waiting_run_leaves_the_host_alone(host, ports):
    # the Service on ports[1] was deleted before run B read the cluster, and after run A did
    assert host.call(model(ports[:1], read_at=1000.0))['reloaded']
    config = host.config.read_bytes()
    b = host.call(model(ports[:1], read_at=3000.0))
    assert not b['changed'] and host.config.read_bytes() == config
    assert state_of(host)['model_read_at'] == 3000.0
    # A waited on B's lock: it must not bring the deleted Service back
    a = host.call(model(ports[:2], read_at=2000.0))
    assert a['outdated'] and not a['changed'] and host.config.read_bytes() == config, a
    assert not serves(ports[1])
    # the same with resourceVersions, and an older no-op run records nothing
    host.call(api_model(ports[:1], '900', 4000.0))
    host.call(api_model(ports[:1], '950', 3900.0))
    assert state_of(host)['resource_version'] == '950'
    assert host.call(api_model(ports[:2], '920', 5000.0))['outdated']
    assert not host.call(api_model(ports[:1], '930', 4100.0))['changed']
    assert state_of(host)['resource_version'] == '950'


def backups(host):
    return sorted(p for p in host.root.iterdir() if p.name.startswith('haproxy.cfg.') and p.name.endswith('~'))


def test_backups_are_never_partial_or_empty_and_only_the_newest_are_kept(host, ports):
    # an empty backup an older version left when the disk was full
    empty = host.root / 'haproxy.cfg.4711.2020-01-01@00:00:00~'
    empty.touch()
    os.utime(empty, (time.time() + 60, time.time() + 60))  # even the newest
    assert host.call(model(ports))['reloaded']
    before = host.config.read_bytes()
    # out of room for the backup: a file size limit between the candidate's size and the current file's
    candidate = len(host.expected(model(ports[:2])).encode())
    assert candidate < len(before)
    limit = (candidate + len(before)) // 2

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = raw(host, model(ports[:2]), preexec_fn=small_files)
    full = json.loads(done.stdout)
    assert full['failed'] and 'cannot keep a backup of %s (' % host.config in full['msg'], full
    assert full['msg'].endswith('; it was not changed')
    assert host.config.read_bytes() == before and not empty.exists()
    assert [p.stat().st_size for p in backups(host)] == [len(host.base)]
    assert not [p for p in host.root.iterdir() if p.name.startswith('.portico-')]
    # four more changes, two kept: the newest, each a whole previous file
    previous = []
    for count in (2, 1, 2, 3):
        previous.append(host.config.read_bytes())
        result = host.call(model(ports[:count]), keep_backups=2, max_removal_ratio=1.0)
        assert result['reloaded'], result
        time.sleep(1.1)  # a backup's name has the time to the second, and each run has its own pid
    kept = backups(host)
    assert len(kept) == 2 and set(p.read_bytes() for p in kept) == set(previous[-2:])
    assert str(max(kept, key=lambda p: p.stat().st_mtime)) == result['backup_file']
    assert host.call(model(ports[:1]), keep_backups=0, max_removal_ratio=1.0)['msg'].startswith(
        'keep_backups must be at least 1')


def cluster(node_count, ports, read_at):
    built = _model.build_model([node('w%02d' % i, '127.0.2.%d' % (40 + i)) for i in range(node_count)],
                               [service('s%d' % i, port, 30000 + i) for i, port in enumerate(ports)],
                               {}, {'kind': 'snapshot', 'snapshot': 'c.json'})
    built['source']['read_at'] = read_at
    return built


def test_the_safety_valve_counts_nodes_and_adds_up_removals_over_runs(host):
    twelve = free_ports(12, 22000, 22999, [LB])
    assert host.call(cluster(12, twelve[:2], 1000.0))['reloaded']
    # 11 of 12 nodes NotReady: the backends stay, their servers go
    files = host.files()
    result = host.call(cluster(1, twelve[:2], 1001.0))
    assert result['failed'] and result['msg'].startswith(
        'lb-test: Refusing to go from 12 nodes that serve in %s to 1 (more than 50%% fewer' % host.config)
    assert host.files() == files
    # a ratchet, each run under half: 12, then 7 backends pass, 4 stops
    assert host.call(cluster(12, twelve, 1002.0))['reloaded']
    assert host.call(cluster(12, twelve[:7], 1003.0))['reloaded']
    files = host.files()
    stopped = host.call(cluster(12, twelve[:4], 1004.0))
    assert stopped['failed'] and not stopped['changed'], stopped
    assert stopped['msg'] == ('lb-test: Refusing to leave 4 backends in %s: within the last 3600 seconds '
                              '(haproxy_sync_removal_window) it served 12, and removals over several runs count '
                              'together, so this would take away more than 50%% (haproxy_sync_max_removal_ratio). '
                              'If this is intended, run again with haproxy_sync_force=true, or wait until that '
                              'window has passed.' % host.config)
    assert host.files() == files
    # with no window, only the current file counts; forced, the record starts afresh
    assert host.call(cluster(12, twelve[:4], 1004.0), removal_window=0, check_mode=True)['changed']
    assert host.call(cluster(12, twelve[:4], 1004.0), force=True)['reloaded']
    assert [entry[1:] for entry in state_of(host)['peaks']] == [[4, 12]]
    assert host.call(cluster(12, twelve[:2], 1005.0))['reloaded']
    # nodes that fall in steps, each under half: told, not refused
    host.call(cluster(6, twelve[:2], 1006.0))
    fewer = host.call(cluster(4, twelve[:2], 1007.0))
    assert fewer['changed'] and not fewer.get('failed') and 'serves 4 nodes; within the last 3600 seconds (haproxy_sync_removal_window) it ' \
        'served 12: more than 50% fewer' in json.dumps(fewer['warnings'])
