# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host sync lock: a directory beside the configuration holding a token file.

Private to this collection; shared by the haproxy_lock and haproxy_reload modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

LOCK_SUFFIX = '.portico-lock'
TOKEN_FILE = 'owner'


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
