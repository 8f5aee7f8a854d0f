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
import os
import shutil
import socket
import time
import uuid

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically

LOCK_SUFFIX = '.portico-lock'
TOKEN_FILE = 'owner'
# Beside the configuration: when the model installed there was read from the cluster.
STATE_SUFFIX = '.portico-state'


def token_of(lock):
    """The token a lock holds, or None (no lock, or a lock without a token file)."""
    try:
        with open(os.path.join(lock, TOKEN_FILE)) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


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


def break_stale(lock):
    """Move a stale lock aside (atomic: one run wins), then remove it; whether it was moved."""
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


def take(lock, timeout, stale_seconds, poll=0.5):
    """Take the lock (mkdir is atomic), waiting up to timeout seconds; (token, stale_removed, waited).

    A lock older than stale_seconds was left by a run that died and is taken away first.
    """
    started, stale_removed = time.time(), False
    token = '%s %d %s' % (socket.gethostname(), os.getpid(), uuid.uuid4().hex)
    while True:
        try:
            os.mkdir(lock, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LockError('cannot take the lock %s: %s; nothing was changed here' % (lock, exc))
        else:
            try:
                with open(os.path.join(lock, TOKEN_FILE), 'w') as handle:
                    handle.write(token + '\n')
            except OSError as exc:
                shutil.rmtree(lock, ignore_errors=True)
                raise LockError('cannot take the lock %s: %s; nothing was changed here' % (lock, exc))
            return token, stale_removed, round(time.time() - started, 2)
        try:
            age = time.time() - os.stat(lock).st_mtime
        except OSError:
            continue  # released meanwhile: try again at once
        if age > stale_seconds and break_stale(lock):
            stale_removed = True
            continue
        if time.time() - started >= timeout:
            raise LockError('Another run holds %s and did not finish within %d seconds (haproxy_sync_lock_timeout); '
                            'nothing was changed here. If no run is going on, remove that directory.'
                            % (lock, timeout))
        time.sleep(poll)


def installed_state(path):
    """What is recorded beside the file at path: model_read_at, and unverified (the digest of a file
    installed but not yet seen served by a new HAProxy worker); {} if nothing is."""
    try:
        with open(path + STATE_SUFFIX) as handle:
            state = json.load(handle)
    except (IOError, OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def installed_model_time(path):
    """When the model installed in the file at path was read (seconds since the epoch), or None."""
    value = installed_state(path).get('model_read_at')
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def record_state(path, model_time, unverified=None, leaving=None):
    """Record (atomically) when the model installed in path was read, whether it is unverified, and
    the servers removed at runtime that still finish their connections (backend/server)."""
    state = {'model_read_at': model_time}
    if unverified:
        state['unverified'] = unverified
    if leaving:
        state['leaving'] = list(leaving)
    content = (json.dumps(state, sort_keys=True) + '\n').encode('utf-8')
    replace_atomically(path + STATE_SUFFIX, lambda out: out.write(content), 0o644)


def record_model_time(path, model_time):
    """Record (atomically) when the model just installed in path was read (and that it was verified)."""
    record_state(path, model_time)
