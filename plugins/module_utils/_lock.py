# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host sync lock: a directory beside the configuration holding a token file.

Private to this collection; shared by the haproxy_lock and haproxy_reload modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

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


def installed_model_time(path):
    """When the model installed in the file at path was read (seconds since the epoch), or None."""
    try:
        with open(path + STATE_SUFFIX) as handle:
            value = json.load(handle).get('model_read_at')
    except (IOError, OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def record_model_time(path, model_time):
    """Record (atomically) when the model just installed in path was read."""
    content = (json.dumps({'model_read_at': model_time}) + '\n').encode('utf-8')
    replace_atomically(path + STATE_SUFFIX, lambda out: out.write(content), 0o644)
