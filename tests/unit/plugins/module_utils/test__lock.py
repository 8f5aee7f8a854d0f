"""The per-host lock: who holds it, and when a holder is known to be gone."""

import json
import os
import socket
import subprocess
import time

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _lock


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(['/bin/true'])
    child.wait()
    return child.pid


def me(**changes):
    holder = _lock.identity()
    holder.update(changes)
    return holder


def test_a_lock_records_host_boot_process_and_its_start_time():
    holder = _lock.identity()
    assert holder['host'] == socket.gethostname() and holder['pid'] == os.getpid()
    assert holder['boot_id'] == open('/proc/sys/kernel/random/boot_id').read().strip()
    assert holder['start'] == _lock.process_start(os.getpid())[1]
    # a lock that outlives its process (haproxy_lock's) names no process
    assert 'pid' not in _lock.identity(process=False) and 'start' not in _lock.identity(process=False)


def test_a_running_holder_is_alive_however_old_its_lock():
    verdict, who = _lock.judge(me(), 10 ** 6, 1800)
    assert verdict == 'alive' and who.startswith('process %d on %s, since ' % (os.getpid(), socket.gethostname()))


@pytest.mark.parametrize('holder, reason', [
    (lambda: me(pid=dead_pid()), 'is gone: no such process runs'),
    (lambda: me(start=_lock.process_start(os.getpid())[1] - 1), 'is another program now'),
    (lambda: me(boot_id='00000000-0000-0000-0000-000000000000'), 'the host has restarted since'),
    (lambda: _lock.holder_of('%s %d 0123abcd' % (socket.gethostname(), dead_pid())), 'no such process runs'),
])
def test_a_holder_that_is_gone_is_known_at_once(holder, reason):
    verdict, why = _lock.judge(holder(), 1, 1800)
    assert verdict == 'gone' and reason in why, why


def test_a_holder_that_cannot_be_asked_is_waited_for_until_the_lock_is_stale():
    other = me(host='another-host')
    assert _lock.judge(other, 100, 1800)[0] == 'unknown'
    verdict, why = _lock.judge(other, 2000, 1800)
    assert verdict == 'gone' and 'cannot be asked from here' in why and 'another-host' in why
    assert _lock.judge(me(pid_ns='pid:[1]'), 100, 1800)[0] == 'unknown'


def test_a_lock_that_names_no_holder_is_left_by_a_run_killed_as_it_took_it():
    assert _lock.judge(None, 5, 1800) == ('unknown', None)
    verdict, why = _lock.judge(_lock.holder_of(''), 31, 1800)
    assert verdict == 'gone' and 'names no holder' in why
    assert _lock.holder_of('{"not": "a holder"}') is None and _lock.holder_of('garbage') is None


def test_take_breaks_the_lock_of_a_dead_holder_at_once_and_says_so(tmp_path):
    lock = str(tmp_path / 'haproxy.cfg.portico-lock')
    os.mkdir(lock)
    gone = me(pid=dead_pid())
    with open(os.path.join(lock, 'owner'), 'w') as handle:
        handle.write(json.dumps(gone) + '\n')
    started = time.monotonic()
    token, broken, waited = _lock.take(lock, 5, 1800)
    assert time.monotonic() - started < 1 and waited < 1
    assert broken.startswith('Took away the lock %s: its holder, process %d on ' % (lock, gone['pid']))
    assert _lock.token_of(lock) == token and json.loads(token)['pid'] == os.getpid()
    assert sorted(os.listdir(str(tmp_path))) == ['haproxy.cfg.portico-lock']
    assert _lock.release(lock, token) and not os.path.exists(lock)


def test_take_waits_for_a_running_holder_and_names_it(tmp_path):
    lock = str(tmp_path / 'haproxy.cfg.portico-lock')
    token, broken, waited = _lock.take(lock, 1, 1800)
    os.utime(lock, (time.time() - 7200, time.time() - 7200))
    with pytest.raises(_lock.LockError) as failed:
        _lock.take(lock, 1, 1800, poll=0.1)
    assert ('Another run holds %s (process %d on %s' % (lock, os.getpid(), socket.gethostname())) in str(failed.value)
    assert ', running) and did not finish within 1 seconds' in str(failed.value)
    assert _lock.token_of(lock) == token


def api(version, read_at, server='https://k8s:6443'):
    return {'source': {'kind': 'api', 'server': server, 'resource_version': version, 'read_at': read_at}}


def test_the_cluster_s_resource_version_decides_whatever_the_clocks_say():
    ahead = _lock.model_mark(api('500', time.time() + 3600))
    assert _lock.later_than(ahead, _lock.model_mark(api('600', time.time()))) is None
    assert _lock.later_than(_lock.model_mark(api('600', 1.0)), _lock.model_mark(api('599', time.time() + 3600))) == \
        'read from the cluster at resourceVersion 600, later than this run\'s (599)'
    # compared as integers, not as text
    assert _lock.later_than(_lock.model_mark(api('10', 0)), _lock.model_mark(api('9', 0)))
    # another server, a snapshot, or a resourceVersion that is no etcd revision: the clocks decide
    assert _lock.later_than(_lock.model_mark(api('600', 5.0)), _lock.model_mark(api('700', 4.0, 'https://b:6443')))
    snapshot = {'source': {'kind': 'snapshot', 'resource_version': '700', 'read_at': 4.0}}
    assert _lock.model_mark(snapshot) == {'model_read_at': 4.0}
    assert _lock.model_mark(api('abc', 4.0)) == _lock.model_mark(api('9' * 20, 4.0)) == {'model_read_at': 4.0}


@pytest.mark.parametrize('text, warning', [
    ('{"model_read_at": Infinity}', 'not a finite number'),
    ('{"model_read_at": NaN}', 'not a finite number'),
    ('{"model_read_at": "1000"}', 'not a finite number'),
    ('{"model_read_at": 1e308}', 'the clock of the controller that read it runs ahead'),
    ('{"model_read_at": 1000.0, "resource_version": "1e308"}', 'not a decimal int64'),
    ('{"model_read_at": 1000.0, "resource_version": 99999999999999999999}', 'not a decimal int64'),
    ('[1000]', 'is not a JSON object'),
    ('{"model_read_at": 10', 'is not JSON'),
    ('\xff\xfe', 'is not JSON'),
])
def test_a_malformed_record_counts_as_absent_with_a_warning(tmp_path, text, warning):
    path = str(tmp_path / 'haproxy.cfg')
    with open(path + '.portico-state', 'w', encoding='latin-1') as handle:
        handle.write(text)
    mark, warnings = _lock.installed_mark(path)
    assert 'resource_version' not in mark and (mark['model_read_at'] in (None, 1000.0))
    assert len(warnings) == 1 and warning in warnings[0] and path + '.portico-state' in warnings[0]
    assert _lock.later_than(mark, {'model_read_at': 2000.0}) is None


def test_a_model_time_ahead_of_the_host_s_clock_when_recorded_is_not_trusted(tmp_path):
    path = str(tmp_path / 'haproxy.cfg')
    now = time.time()
    _lock.record_state(path, _lock.model_mark({'source': {'kind': 'snapshot', 'read_at': now + 3600}}))
    mark, warnings = _lock.installed_mark(path)
    assert mark == {'model_read_at': None} and 'runs ahead' in warnings[0]
    # a few seconds of skew is a clock, not a fault
    _lock.record_state(path, _lock.model_mark({'source': {'kind': 'snapshot', 'read_at': now + 5}}))
    assert _lock.installed_mark(path) == ({'model_read_at': now + 5}, [])
    # the deprecated haproxy_reload's record (no recorded_at) is bounded by the host's clock now
    _lock.record_model_time(path, now + 7200)
    assert _lock.installed_mark(path)[0] == {'model_read_at': None}
    assert _lock.installed_model_time(path) is None
