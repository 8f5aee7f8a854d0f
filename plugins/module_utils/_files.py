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
import re
import tempfile
import time

# A backup of <path>: <path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~, as Ansible's backup_local names it.
_BACKUP = r'\.[0-9]+\.[0-9]{4}-[0-9]{2}-[0-9]{2}@[0-9]{2}:[0-9]{2}:[0-9]{2}~\Z'
_BACKUP_TEMPORARY = '.portico-backup.'


def replace_atomically(path, write, mode, owner=None, prefix='.portico-', sync=False):
    """Give path new content: write(binary handle) fills a temporary file in path's directory,
    which gets mode (and owner, a (uid, gid) pair, when given) and is then renamed over path.
    A reader sees the old file or the new one, never a part; nothing is left behind on failure.
    sync: the content is on disk (fsync) before the rename, and the rename after it."""
    directory = os.path.dirname(path) or '.'
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        with os.fdopen(handle, 'wb') as out:
            write(out)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, *owner)
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    if sync:
        _sync_directory(directory)


def _sync_directory(directory):
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def keep_backup(path, content, mode, owner=None):
    """Write content (the file at path before it is replaced) as a backup beside it,
    <path>.<pid>.<time>~, with mode and owner: to a temporary name, fsync, then renamed, so a full
    disk or a kill never leaves a partial or empty backup. Returns the backup's path."""
    backup = '%s.%d.%s~' % (path, os.getpid(), time.strftime('%Y-%m-%d@%H:%M:%S'))
    replace_atomically(backup, lambda out: out.write(content), mode, owner, prefix=_BACKUP_TEMPORARY, sync=True)
    return backup


def prune_backups(path, keep, spare=None):
    """Remove the backups of path beyond the keep newest (by modification time), every empty one
    (left by an older version on a full disk) and temporary ones left by a run that died (the caller
    holds the lock); spare is never removed. Returns the paths removed."""
    directory = os.path.dirname(path) or '.'
    pattern = re.compile(re.escape(os.path.basename(path)) + _BACKUP)
    backups, removed = [], []
    for name in os.listdir(directory):
        full = os.path.join(directory, name)
        if name.startswith(_BACKUP_TEMPORARY) or not pattern.match(name):
            if name.startswith(_BACKUP_TEMPORARY) and full != spare:
                removed.append(full)
            continue
        try:
            info = os.lstat(full)
        except OSError:
            continue
        if not os.path.isfile(full) or os.path.islink(full):
            continue
        if info.st_size == 0 and full != spare:
            removed.append(full)
        else:
            backups.append((info.st_mtime, name, full))
    backups.sort(reverse=True)
    removed.extend(full for dummy, dummy, full in backups[keep:] if full != spare)
    for full in removed:
        try:
            os.unlink(full)
        except OSError:
            pass
    return sorted(removed)


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
