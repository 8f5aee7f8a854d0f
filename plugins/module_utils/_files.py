# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a file atomically: write a temporary file beside it, then rename it into place.

Private to this collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import tempfile


def replace_atomically(path, write, mode, owner=None):
    """Give path new content: write(binary handle) fills a temporary file in path's directory,
    which gets mode (and owner, a (uid, gid) pair, when given) and is then renamed over path.
    A reader sees the old file or the new one, never a part; nothing is left behind on failure."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix='.portico-')
    try:
        with os.fdopen(handle, 'wb') as out:
            write(out)
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, *owner)
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def owner_ids(path, owner=None, group=None):
    """(uid, gid) a new version of path gets: the named owner and group, else the current file's;
    None when there is nothing to set (no names given, and no file or not running as root)."""
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if not owner and not group and (info is None or os.geteuid() != 0):
        return None
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else (info.st_uid if info else os.geteuid())
        gid = grp.getgrnam(group).gr_gid if group else (info.st_gid if info else os.getegid())
    except KeyError as exc:
        raise ValueError('no such user or group: %s' % exc)
    return uid, gid
