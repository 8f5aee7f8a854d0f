# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a file atomically: write a temporary file beside it, then rename it into place.

Private to this collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
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
