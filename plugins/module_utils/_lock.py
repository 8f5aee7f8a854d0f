# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host sync lock: a directory beside the configuration holding a token file.

Private to this collection; used by the haproxy_config module (and the deprecated haproxy_lock
and haproxy_reload modules).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
import re
import shutil
import socket
import time
import uuid

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically

LOCK_SUFFIX = '.portico-lock'
TOKEN_FILE = 'owner'
# Beside the configuration: when the model installed there was read from the cluster.
STATE_SUFFIX = '.portico-state'


# Who holds a lock: enough to tell, on the same host, that the holder is gone.
BOOT_ID = '/proc/sys/kernel/random/boot_id'
# A lock with no readable owner record this old was left by a run killed as it took it (the
# record is written right after the directory is made).
NO_OWNER_GRACE = 30


def token_of(lock):
    """The token a lock holds, or None (no lock, or a lock without a token file)."""
    try:
        with open(os.path.join(lock, TOKEN_FILE)) as handle:
            return handle.read().strip() or None
    except (IOError, OSError, UnicodeDecodeError):
        return None


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except (IOError, OSError, UnicodeDecodeError):
        return None


def process_start(pid):
    """(state letter, start time in clock ticks after boot) of a process from /proc/<pid>/stat;
    None when there is no such process. Raises OSError when /proc cannot tell (no /proc)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            text = handle.read()
    except (IOError, OSError):
        if not os.path.isdir('/proc/self'):
            raise OSError('no /proc on this host')
        return None
    # the command name is in parentheses and may hold anything: the fields follow the last ')'
    fields = text.rsplit(')', 1)[-1].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        raise OSError('/proc/%d/stat is not in the format this module reads' % pid)


def _pid_namespace():
    try:
        return os.readlink('/proc/self/ns/pid')
    except (IOError, OSError):
        return None


def identity(process=True):
    """This run's owner record: a token, the host, its boot id and, when the lock lives as long as
    this process (process=True), the process id, its start time and its pid namespace."""
    me = {'token': uuid.uuid4().hex, 'host': socket.gethostname(), 'taken_at': round(time.time(), 3)}
    boot = _read(BOOT_ID)
    if boot:
        me['boot_id'] = boot
    if process:
        me['pid'] = os.getpid()
        try:
            me['start'] = process_start(os.getpid())[1]
        except (OSError, TypeError):
            pass
        namespace = _pid_namespace()
        if namespace:
            me['pid_ns'] = namespace
    return me


def holder_of(token):
    """The owner record a token stands for (a dict), or None. Older versions wrote 'host pid uuid'."""
    if not token:
        return None
    try:
        record = json.loads(token)
    except ValueError:
        words = token.split()
        if len(words) == 3 and words[1].isdigit():
            return {'host': words[0], 'pid': int(words[1]), 'token': words[2]}
        return None
    if not isinstance(record, dict) or not isinstance(record.get('host'), str):
        return None
    if not isinstance(record.get('pid'), int) or isinstance(record.get('pid'), bool) or record['pid'] < 1:
        record.pop('pid', None)
    return record


def describe(holder):
    """'process 4711 on lb1, since 2026-01-01 10:00:00 UTC' of an owner record."""
    words = 'process %d on %s' % (holder['pid'], holder['host']) if 'pid' in holder else 'a run on %s' % holder['host']
    taken = holder.get('taken_at')
    if isinstance(taken, (int, float)) and not isinstance(taken, bool):
        try:
            words += ', since %s' % time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(taken))
        except (ValueError, OverflowError, OSError):
            pass
    return words


def judge(holder, age, stale_seconds, grace=NO_OWNER_GRACE):
    """('gone', why) when the lock's holder is known to be gone (or the lock is stale), ('alive', who)
    when it is known to run, ('unknown', who or None) otherwise. age: seconds since the lock was made."""
    if holder is None:
        if age > grace:
            return 'gone', ('it names no holder and is %d seconds old (a run killed as it took the lock, or out of '
                            'disk space)' % age)
        return 'unknown', None
    who = describe(holder)
    verdict = 'unknown'
    if holder['host'] == socket.gethostname():
        boot = _read(BOOT_ID)
        if holder.get('boot_id') and boot and holder['boot_id'] != boot:
            return 'gone', 'its holder, %s, is gone: the host has restarted since' % who
        if 'pid' in holder and holder.get('pid_ns') in (None, _pid_namespace()):
            try:
                process = process_start(holder['pid'])
            except OSError:
                process = False
            if process is None or (process and process[0] in 'ZX'):
                return 'gone', 'its holder, %s, is gone: no such process runs' % who
            if process and holder.get('start') is not None:
                if process[1] != holder['start']:
                    return 'gone', ('its holder, %s, is gone: process %d is another program now' % (who, holder['pid']))
                verdict = 'alive'
    if verdict == 'unknown' and age > stale_seconds:
        return 'gone', ('it is %d seconds old (more than haproxy_sync_lock_stale_seconds, %d), and its holder, %s, '
                        'cannot be asked from here' % (age, stale_seconds, who))
    return verdict, who


def release(lock, token=None):
    """Remove the lock if it still holds token (any lock when token is None); whether it was removed."""
    if token is not None and token_of(lock) not in (token, None):
        return False
    try:
        os.unlink(os.path.join(lock, TOKEN_FILE))
    except (IOError, OSError):
        pass
    try:
        os.rmdir(lock)
    except (IOError, OSError):
        return False
    return True


class LockError(Exception):
    """The lock cannot be taken; str() says why and what to do."""


def break_stale(lock, seen=None):
    """Move a stale lock aside (atomic: one run wins), then remove it; whether it was moved.
    seen: the token judged stale (read now when not given): a lock that holds another is put back."""
    if seen is None:
        seen = token_of(lock)
    aside = '%s.stale-%s' % (lock, uuid.uuid4().hex)
    try:
        os.rename(lock, aside)
    except OSError:
        return False
    if token_of(aside) != seen:
        try:
            os.rename(aside, lock)
            return False
        except OSError:
            pass
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _write_owner(lock, token):
    """The owner record, created exclusively: a paused run can never overwrite another's."""
    handle = os.open(os.path.join(lock, TOKEN_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(handle, 'w') as out:
        out.write(token + '\n')


def take(lock, timeout, stale_seconds, poll=0.5, process=True):
    """Take the lock (mkdir is atomic), waiting up to timeout seconds; (token, broken, waited).

    The lock records who holds it (see identity; process=False when the lock outlives this
    process, as haproxy_lock's does). A lock whose holder is gone (its process ended or is another
    program now, or the host restarted) is taken away at once; one whose holder cannot be asked
    (another host, an older version's lock) when older than stale_seconds. broken is then the
    message that says so, else ''.
    """
    started, broken = time.time(), ''
    token = json.dumps(identity(process), sort_keys=True, separators=(',', ':'))
    while True:
        try:
            os.mkdir(lock, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LockError('cannot take the lock %s: %s; nothing was changed here' % (lock, exc))
        else:
            try:
                _write_owner(lock, token)
            except OSError as exc:
                shutil.rmtree(lock, ignore_errors=True)
                raise LockError('cannot take the lock %s: %s; nothing was changed here' % (lock, exc))
            return token, broken, round(time.time() - started, 2)
        seen = token_of(lock)
        try:
            age = time.time() - os.stat(lock).st_mtime
        except OSError:
            continue  # released meanwhile: try again at once
        verdict, about = judge(holder_of(seen), age, stale_seconds)
        if verdict == 'gone' and break_stale(lock, seen):
            broken = 'Took away the lock %s: %s.' % (lock, about)
            continue
        if time.time() - started >= timeout:
            raise LockError('Another run holds %s%s and did not finish within %d seconds (haproxy_sync_lock_timeout); '
                            'nothing was changed here. If no run is going on, remove that directory.'
                            % (lock, ' (%s%s)' % (about, ', running' if verdict == 'alive' else '') if about else '',
                               timeout))
        time.sleep(poll)


# A recorded model time this far ahead of the host's clock (when it was recorded) was read by a
# controller whose clock runs ahead; it is not trusted.
CLOCK_TOLERANCE = 60
# etcd's revision, which the API server hands out as resourceVersion, is an int64.
_VERSION = re.compile(r'[0-9]{1,19}\Z')


def _read_state(path):
    """(state dict, None), or ({}, why it is not a record this module writes); ({}, None) when there is none."""
    try:
        with open(path + STATE_SUFFIX, 'rb') as handle:
            state = json.loads(handle.read().decode('utf-8'))
    except FileNotFoundError:
        return {}, None
    except (IOError, OSError) as exc:
        return {}, 'cannot be read (%s)' % exc
    except ValueError as exc:  # also UnicodeDecodeError
        return {}, 'is not JSON (%s)' % exc
    if not isinstance(state, dict):
        return {}, 'is not a JSON object'
    return state, None


def installed_state(path):
    """What is recorded beside the file at path: the installed model's mark (model_read_at,
    resource_version, server), recorded_at, unverified (the digest of a file installed but not yet
    seen served by a new HAProxy worker), leaving, peaks and serves; {} if nothing (readable) is."""
    return _read_state(path)[0]


def _time(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _version(value):
    if isinstance(value, str) and _VERSION.match(value) and int(value) < 2 ** 63:
        return value
    return None


def model_mark(model):
    """What the host records of a model, to tell an older one from a newer: when reading began
    (model_read_at, the controller's clock) and, when it was read from the API, the cluster's
    resourceVersion of the node list (resource_version) and the API server (server)."""
    source = model.get('source') if isinstance(model, dict) else None
    source = source if isinstance(source, dict) else {}
    mark = {'model_read_at': _time(source.get('read_at'))}
    version = _version(source.get('resource_version'))
    if source.get('kind') == 'api' and version is not None:
        mark['resource_version'] = version
        if isinstance(source.get('server'), str):
            mark['server'] = source['server']
    return mark


def installed_mark(path, now=None):
    """(mark, warnings) of the model installed in the file at path, as model_mark makes it.

    A malformed record (not JSON, a time that is not a finite number, a resourceVersion that is not
    a decimal int64) counts as absent, and a model time ahead of the host's clock when it was
    recorded (by more than CLOCK_TOLERANCE seconds) is not trusted; each with a warning.
    """
    state, problem = _read_state(path)
    where = path + STATE_SUFFIX
    if problem:
        return {'model_read_at': None}, ['%s %s; it is treated as absent.' % (where, problem)]
    warnings, mark = [], {'model_read_at': None}
    now = time.time() if now is None else now
    recorded = _time(state.get('recorded_at'))
    if recorded is None or recorded > now + CLOCK_TOLERANCE:
        if 'recorded_at' in state:
            warnings.append('%s says it was written at %r, which is not a time before now; that is ignored.'
                            % (where, state['recorded_at']))
        recorded = now
    if 'model_read_at' in state and state['model_read_at'] is not None:
        read_at = _time(state['model_read_at'])
        if read_at is None:
            warnings.append('%s holds a model time that is not a finite number (%r); it is treated as absent.'
                            % (where, state['model_read_at']))
        elif read_at > recorded + CLOCK_TOLERANCE:
            warnings.append('%s records a model read at %.3f, %d seconds after this host\'s clock said it was '
                            'recorded: the clock of the controller that read it runs ahead. That time is ignored.'
                            % (where, read_at, read_at - recorded))
        else:
            mark['model_read_at'] = read_at
    if state.get('resource_version') is not None:
        version = _version(state['resource_version'])
        if version is None:
            warnings.append('%s holds a resourceVersion that is not a decimal int64 (%r); it is treated as absent.'
                            % (where, state['resource_version']))
        else:
            mark['resource_version'] = version
            if isinstance(state.get('server'), str):
                mark['server'] = state['server']
    return mark, warnings


def later_than(installed, mark):
    """How the installed model is later than this run's (a phrase), or None when it is not.

    Both read from the same API server: their resourceVersions decide, compared as integers.
    Kubernetes calls resourceVersions opaque; an etcd-backed API server hands out etcd's revision,
    which only grows, so the comparison holds there (a cluster rebuilt or restored from an older
    etcd backup behind the same server starts lower: haproxy_sync_force installs it). Otherwise
    the controllers' clocks decide (model_read_at).
    """
    return _later(installed, mark)


def _later(first, second):
    """How the model of mark first is later than the model of mark second, or None."""
    theirs, mine = first.get('resource_version'), second.get('resource_version')
    if mine is not None and theirs is not None and second.get('server') == first.get('server'):
        if int(theirs) > int(mine):
            return 'read from the cluster at resourceVersion %s, later than this run\'s (%s)' % (theirs, mine)
        return None
    theirs, mine = first.get('model_read_at'), second.get('model_read_at')
    if None not in (mine, theirs) and theirs > mine:
        return 'read from the cluster at %.3f, later than this run\'s (%.3f)' % (theirs, mine)
    return None


def newer_than(mark, installed):
    """Whether mark tells more than installed: later (see later_than), or the only one that tells."""
    if _later(mark, installed):
        return True
    known = [key for key in ('model_read_at', 'resource_version') if mark.get(key) is not None]
    return bool(known) and all(installed.get(key) is None for key in known)


def installed_model_time(path):
    """When the model installed in the file at path was read (seconds since the epoch), or None."""
    return installed_mark(path)[0].get('model_read_at')


def record_state(path, mark, unverified=None, leaving=None, stamp=True, peaks=None, serves=None):
    """Record (atomically) the mark of the model installed in path (model_mark's, or its time
    alone), whether it is unverified, the servers removed at runtime that still finish their
    connections (backend/server), (stamp) when this host recorded it, what it served at most
    lately (peaks, for the safety valve) and what the installed file serves (serves: its model's
    generation, source and counts, and when it was installed, for the status view and the
    metrics); peaks and serves are kept from the current record when None."""
    if not isinstance(mark, dict):
        mark = {'model_read_at': mark}
    current = installed_state(path) if peaks is None or serves is None else {}
    if peaks is None:
        peaks = current.get('peaks')
    if serves is None:
        serves = current.get('serves')
    state = {'model_read_at': mark.get('model_read_at')}
    if isinstance(peaks, list) and peaks:
        state['peaks'] = peaks
    if isinstance(serves, dict) and serves:
        state['serves'] = serves
    for key in ('resource_version', 'server'):
        if mark.get(key) is not None:
            state[key] = mark[key]
    if stamp:
        state['recorded_at'] = round(time.time(), 3)
    if unverified:
        state['unverified'] = unverified
    if leaving:
        state['leaving'] = list(leaving)
    content = (json.dumps(state, sort_keys=True) + '\n').encode('utf-8')
    replace_atomically(path + STATE_SUFFIX, lambda out: out.write(content), 0o644)


def record_model_time(path, model_time):
    """Record (atomically) when the model just installed in path was read (and that it was verified)."""
    record_state(path, model_time, stamp=False)
