# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS certificate files on a load balancer: one PEM bundle (chain and key) per Secret version.

Private to this collection; runs on the load balancer. Files are mode 0600 in a directory of
mode 0700, written atomically, and only when their content differs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import re
import stat
import tempfile

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically

# <namespace>_<secret>.<version>.pem, as nodeport_info names them: no "/" and no ".." can be in one
FILE_NAME = re.compile(r'\A[a-z0-9-]+_[a-z0-9.-]+[.][0-9a-f]{12}[.]pem\Z')


class CertificateError(Exception):
    """A certificate file that cannot be installed; str() says why, never what it holds."""


def _owner(owner, group):
    """(uid, gid) for names (None keeps this process's), or CertificateError."""
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else os.geteuid()
        gid = grp.getgrnam(group).gr_gid if group else os.getegid()
    except KeyError as exc:
        raise CertificateError('no such user or group: %s' % exc)
    return uid, gid


def _directory(path, ids):
    """Make path (0700, owned by ids) or check that it is a real directory; a link is refused."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise CertificateError('%s exists and is not a directory' % path)
    os.chmod(path, 0o700)
    os.chown(path, *ids)


def same_content(path, data):
    """Whether the file at path holds exactly data (bytes)."""
    try:
        with open(path, 'rb') as handle:
            return handle.read() == data
    except (IOError, OSError):
        return False


def install(directory, bundles, owner=None, group=None, check_mode=False):
    """Put bundles ({file: PEM text}) in directory; returns (files that changed, the directory used).

    In check mode the files go to a new private temporary directory instead (for validating a
    candidate configuration) and the caller removes it; the real directory is left as it is.
    """
    for name in bundles:
        if not FILE_NAME.match(name):
            raise CertificateError('%r is not a certificate file name of this collection' % (name,))
    changed = sorted(name for name, text in bundles.items()
                     if not same_content(os.path.join(directory, name), text.encode('ascii')))
    if check_mode:
        target, ids = tempfile.mkdtemp(prefix='portico-check-certs.'), None
    else:
        target, ids = directory, _owner(owner, group)
        try:
            _directory(directory, ids)
        except OSError as exc:
            raise CertificateError('cannot make the certificate directory %s: %s' % (directory, exc.strerror))
    for name in sorted(bundles) if check_mode else changed:
        data = bundles[name].encode('ascii')
        try:
            replace_atomically(os.path.join(target, name), lambda out, data=data: out.write(data), 0o600, ids)
        except OSError as exc:
            raise CertificateError('cannot write %s: %s' % (os.path.join(target, name), exc.strerror))
    return changed, target
