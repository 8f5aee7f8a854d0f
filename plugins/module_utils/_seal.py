# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS bundles sealed for their trip from the collect step to the load balancers.

Private to this collection. A bundle holds a private key; between the task that reads the
Secret and the task that installs the file on a load balancer it only exists sealed
(AES-256-GCM, bound to its file name) with a key that the run keeps in memory. Nothing is
written on the controller, and a sealed bundle that outlives the run (a log, an AWX job
event) is useless without that key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import os
import traceback

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

# A key is text of at least this many characters, from a random source (the role makes one per run).
MIN_KEY_LENGTH = 32


class SealError(ValueError):
    """A bundle that cannot be sealed or unsealed; str() says why, never what it holds."""


def _cipher(key):
    if not HAS_CRYPTOGRAPHY:
        raise SealError('sealing TLS bundles needs the cryptography Python library')
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise SealError('the seal key must be text of at least %d characters' % MIN_KEY_LENGTH)
    return AESGCM(hashlib.sha256(key.encode('utf-8')).digest())


def seal(key, name, data):
    """data (bytes) sealed for name, as base64 text."""
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _cipher(key).encrypt(nonce, data, name.encode('utf-8'))).decode('ascii')


def unseal(key, name, sealed):
    """The bytes seal(key, name, data) sealed; SealError for another key, name or a damaged text."""
    cipher = _cipher(key)
    try:
        raw = base64.b64decode(sealed, validate=True)
        return cipher.decrypt(raw[:12], raw[12:], name.encode('utf-8'))
    except (TypeError, ValueError, binascii.Error, InvalidTag):
        raise SealError('the sealed bundle %s does not open with this run\'s key' % name)


def seal_bundles(key, bundles):
    """{file: sealed text} of {file: PEM bytes}."""
    return dict((name, seal(key, name, data)) for name, data in sorted(bundles.items()))
