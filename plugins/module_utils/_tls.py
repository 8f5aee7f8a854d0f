# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates for TLS termination, from Secrets of type kubernetes.io/tls.

Private to this collection. ``read_tls_secret`` checks a Secret the way HAProxy would need
it (PEM certificate chain, an unencrypted RSA or ECDSA key that belongs to the first
certificate) and returns a clean PEM bundle plus facts that are safe to show. The bundle
holds the private key: it is written to a file of mode 0600 and never returned to Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import os
import re
import stat
import traceback

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

TLS_SECRET_TYPE = 'kubernetes.io/tls'
# A Secret holds at most 1 MiB; a certificate chain is a few KB.
MAX_PEM_BYTES = 1024 * 1024
_CURVES = ('secp256r1', 'secp384r1', 'secp521r1')
_CERT_BLOCK = re.compile(br'-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----', re.S)


def certificate_file(namespace, name, version):
    """The file of one version of a Secret's bundle; "_" appears in neither name, so it is unique."""
    return '%s_%s.%s.pem' % (namespace, name, version)


def _field(data, key, secret_id):
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidValue('Secret %s has no %s' % (secret_id, key))
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue('Secret %s: %s is not base64' % (secret_id, key))
    if len(decoded) > MAX_PEM_BYTES:
        raise InvalidValue('Secret %s: %s is larger than 1 MiB' % (secret_id, key))
    return decoded


def _certificates(pem, secret_id):
    blocks = _CERT_BLOCK.findall(pem)
    if not blocks:
        raise InvalidValue('Secret %s: tls.crt holds no PEM certificate' % secret_id)
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as exc:
        raise InvalidValue('Secret %s: tls.crt holds a certificate that cannot be read (%s)' % (secret_id, exc))


def _private_key(pem, secret_id):
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise InvalidValue('Secret %s: tls.key is encrypted; HAProxy needs an unencrypted key' % secret_id)
    except ValueError as exc:
        raise InvalidValue('Secret %s: tls.key is not a PEM private key (%s)' % (secret_id, exc))
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise InvalidValue('Secret %s: tls.key is a %s key; HAProxy serves RSA and ECDSA keys'
                           % (secret_id, type(key).__name__.replace('PrivateKey', '').lstrip('_')))
    # What HAProxy's OpenSSL loads at its default security level.
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise InvalidValue('Secret %s: tls.key is an RSA key of %d bits; HAProxy needs at least 2048'
                           % (secret_id, key.key_size))
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _CURVES:
        raise InvalidValue('Secret %s: tls.key is on curve %s; use one of %s'
                           % (secret_id, key.curve.name, ', '.join(_CURVES)))
    return key


def _public_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _names(certificate):
    try:
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = alt.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [attr.value for attr in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    # Only names that are safe to print and compare; anything else is left out of the facts.
    return sorted(set(n.lower() for n in names if isinstance(n, str) and re.match(r'\A[*a-zA-Z0-9.-]{1,253}\Z', n)))


def _not_after(certificate):
    moment = getattr(certificate, 'not_valid_after_utc', None)
    if moment is None:
        moment = certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return moment


def read_tls_secret(secret, now=None):
    """(bundle, facts) from a Secret object, or InvalidValue naming the Secret and the reason.

    bundle: the certificate chain then the key, re-encoded as PEM (bytes).
    facts: secret, file, names, not_after, expired and the leaf's sha256 fingerprint.
    Nothing a Secret holds can fail otherwise: one tenant's Secret never stops a sync.
    """
    if not HAS_CRYPTOGRAPHY:
        raise InvalidValue('TLS termination needs the cryptography Python library')
    metadata = secret.get('metadata') or {}
    namespace, name = metadata.get('namespace'), metadata.get('name')
    secret_id = '%s/%s' % (namespace, name)
    try:
        return _read(secret, secret_id, namespace, name, now)
    except InvalidValue:
        raise
    except Exception as exc:  # a malformed extension, an algorithm the library does not know, ...
        # the type only: an exception's text could quote the Secret's bytes
        raise InvalidValue('Secret %s cannot be read as a certificate and key (%s)' % (secret_id, type(exc).__name__))


def _read(secret, secret_id, namespace, name, now):
    if secret.get('type') != TLS_SECRET_TYPE:
        raise InvalidValue('Secret %s is of type %r, not %s' % (secret_id, secret.get('type'), TLS_SECRET_TYPE))
    data = secret.get('data') if isinstance(secret.get('data'), dict) else {}
    certificates = _certificates(_field(data, 'tls.crt', secret_id), secret_id)
    key = _private_key(_field(data, 'tls.key', secret_id), secret_id)
    if _public_der(key.public_key()) != _public_der(certificates[0].public_key()):
        raise InvalidValue('Secret %s: tls.key does not belong to the first certificate of tls.crt' % secret_id)
    not_after = _not_after(certificates[0])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    bundle = b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    bundle += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    facts = {
        'secret': secret_id,
        # named by content: a renewed Secret is a new file, so the configuration that binds it
        # changes, is validated with it, and a restored previous configuration finds its own file
        'file': certificate_file(namespace, name, hashlib.sha256(bundle).hexdigest()[:12]),
        'names': _names(certificates[0]),
        'not_after': not_after.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'expired': not_after < now,
        'fingerprint': hashlib.sha256(certificates[0].public_bytes(serialization.Encoding.DER)).hexdigest(),
    }
    return bundle, facts


def name_matches(host, names):
    """Whether a certificate with these names serves host (one-label wildcards, as TLS does)."""
    for name in names:
        if name == host:
            return True
        if name.startswith('*.') and not host.startswith('*.'):
            label, sep, rest = host.partition('.')
            if sep and rest == name[2:]:
                return True
    return False


def _private_directory(directory):
    """Make directory (mode 0700), or accept it if it is a real directory of this user."""
    parent = os.path.dirname(directory.rstrip('/'))
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        # never write keys through a link or into someone else's directory
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise OSError('%s exists and is not a directory of this user' % directory)
    os.chmod(directory, 0o700)


def write_bundles(directory, bundles):
    """Write each bundle to directory/<file> with mode 0600 (the directory is made 0700).

    bundles: {file: bytes}. Each file is written to a temporary name, then renamed.
    """
    _private_directory(directory)
    for file_name, bundle in sorted(bundles.items()):
        replace_atomically(os.path.join(directory, file_name), lambda out, data=bundle: out.write(data), 0o600)
