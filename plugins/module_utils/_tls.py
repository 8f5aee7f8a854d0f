# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates for TLS termination, from Secrets of type kubernetes.io/tls.

Private to this collection. ``read_tls_secret`` checks a Secret the way HAProxy would need
it (PEM certificate chain, an unencrypted RSA or ECDSA key that belongs to the first
certificate) and returns a clean PEM bundle plus facts that are safe to show. The bundle
holds the private key: it leaves the module only sealed (see _seal), never in the model.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import re
import time
import traceback

from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue, _show

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

TLS_SECRET_TYPE = 'kubernetes.io/tls'
# What one tenant's Secret may cost: a certificate chain is a few KB and a key under 16 KB
# (RSA 8192). Beyond these limits a Secret is refused unread, whatever it holds.
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_KEY_BYTES = 16 * 1024
MAX_PEM_BLOCKS = 16
MAX_CHAIN = 10
MAX_NAMES = 250
MAX_RSA_BITS = 8192
# Wall-clock budget for reading one Secret; the limits above keep it far below this.
PARSE_SECONDS = 0.5
_CURVES = ('secp256r1', 'secp384r1', 'secp521r1')
_BEGIN = b'-----BEGIN '
_DASHES = b'-----'
_LABEL = re.compile(br'\A[A-Z0-9 ]{1,40}\Z')
# A name HAProxy indexes a certificate by, as it compares them: "*." for a wildcard.
_NAME = re.compile(r'\A(\*\.)?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\Z')


def certificate_file(namespace, name, version):
    """The file of one version of a Secret's bundle; "_" appears in neither name, so it is unique."""
    return '%s_%s.%s.pem' % (namespace, name, version)


def _field(data, key, secret_id, limit):
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidValue('Secret %s has no %s' % (secret_id, key))
    # base64 of the limit, so an oversized value is refused before it is decoded
    if len(value) > (limit + 2) // 3 * 4 + 4:
        raise InvalidValue('Secret %s: %s is larger than %d KiB' % (secret_id, key, limit // 1024))
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue('Secret %s: %s is not base64' % (secret_id, key))
    if len(decoded) > limit:
        raise InvalidValue('Secret %s: %s is larger than %d KiB' % (secret_id, key, limit // 1024))
    return decoded


def pem_blocks(pem, what):
    """[(label, block)] of the PEM blocks in pem, in one pass over the bytes (never quadratic).

    Raises InvalidValue (starting with what) for a block without its end line, a malformed
    label, or more than MAX_PEM_BLOCKS blocks.
    """
    blocks, position = [], 0
    while True:
        start = pem.find(_BEGIN, position)
        if start < 0:
            return blocks
        if len(blocks) == MAX_PEM_BLOCKS:
            raise InvalidValue('%s holds more than %d PEM blocks' % (what, MAX_PEM_BLOCKS))
        label_end = pem.find(_DASHES, start + len(_BEGIN), start + len(_BEGIN) + 41)
        label = pem[start + len(_BEGIN):label_end] if label_end > 0 else b''
        if not _LABEL.match(label):
            raise InvalidValue('%s has a malformed PEM "BEGIN" line' % what)
        end_line = b'-----END ' + label + _DASHES
        end = pem.find(end_line, label_end + len(_DASHES))
        if end < 0:
            raise InvalidValue('%s has a PEM block "%s" without its END line' % (what, label.decode('ascii')))
        position = end + len(end_line)
        blocks.append((label.decode('ascii'), pem[start:position]))


class _Budget:
    """Stops reading a Secret that takes longer than PARSE_SECONDS."""

    def __init__(self, secret_id):
        self.secret_id, self.deadline = secret_id, time.monotonic() + PARSE_SECONDS

    def check(self):
        if time.monotonic() > self.deadline:
            raise InvalidValue('Secret %s takes longer than %.1f s to read; refused' % (self.secret_id, PARSE_SECONDS))


def _certificates(pem, secret_id, budget):
    blocks = [block for label, block in pem_blocks(pem, 'Secret %s: tls.crt' % secret_id) if label == 'CERTIFICATE']
    if not blocks:
        raise InvalidValue('Secret %s: tls.crt holds no PEM certificate' % secret_id)
    if len(blocks) > MAX_CHAIN:
        raise InvalidValue('Secret %s: tls.crt holds %d certificates; a chain of at most %d is accepted'
                           % (secret_id, len(blocks), MAX_CHAIN))
    certificates = []
    for block in blocks:
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise InvalidValue('Secret %s: tls.crt holds a certificate that cannot be read (%s)' % (secret_id, exc))
        budget.check()
    return certificates


# The DER of the algorithm OIDs of the keys HAProxy serves, in a PKCS#8 "PRIVATE KEY".
_KEY_ALGORITHMS = {bytes.fromhex('06092a864886f70d010101'): 'RSA', bytes.fromhex('06072a8648ce3d0201'): 'EC'}
# Other key formats, by their PEM label: the label says the algorithm.
_KEY_LABELS = {'RSA PRIVATE KEY': 'RSA', 'EC PRIVATE KEY': 'EC'}


def _der_header(der, offset, tag):
    """(start of the content, end of the element) of the DER element of this tag at offset, or None."""
    if offset + 2 > len(der) or der[offset] != tag:
        return None
    length, offset = der[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7f
        if not 0 < count <= 4 or offset + count > len(der):
            return None
        length, offset = int.from_bytes(der[offset:offset + count], 'big'), offset + count
    return (offset, offset + length) if offset + length <= len(der) else None


def pkcs8_algorithm(der):
    """The DER of the algorithm OID of a PKCS#8 PrivateKeyInfo, read without loading the key, or None."""
    outer = _der_header(der, 0, 0x30)
    version = _der_header(der, outer[0], 0x02) if outer else None
    algorithm = _der_header(der, version[1], 0x30) if version else None
    oid = _der_header(der, algorithm[0], 0x06) if algorithm else None
    return der[algorithm[0]:oid[1]] if oid else None


def _key_kind(label, block):
    """'RSA' or 'EC' for a key block HAProxy could serve, 'other' or 'unreadable' if not; decided
    before anything is loaded, since loading some keys (DSA with huge parameters) costs seconds."""
    if label in _KEY_LABELS:
        return _KEY_LABELS[label]
    if label != 'PRIVATE KEY':
        return 'other'
    body = b''.join(line for line in block.splitlines()[1:-1] if b':' not in line)
    try:
        algorithm = pkcs8_algorithm(base64.b64decode(body, validate=False))
    except (binascii.Error, ValueError):
        algorithm = None
    return 'unreadable' if algorithm is None else _KEY_ALGORITHMS.get(algorithm, 'other')


def _load_key(pem):
    try:
        # The full RSA check costs seconds for a large key; the key is matched to the certificate instead.
        return serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:
        if 'unsafe_skip_rsa_key_validation' not in str(exc):
            raise
        return serialization.load_pem_private_key(pem, password=None)


def _private_key(pem, secret_id):
    keys = [(label, block) for label, block in pem_blocks(pem, 'Secret %s: tls.key' % secret_id)
            if label.endswith('PRIVATE KEY')]
    if not keys:
        raise InvalidValue('Secret %s: tls.key is not a PEM private key' % secret_id)
    label, block = keys[0]
    if label == 'ENCRYPTED PRIVATE KEY':
        raise InvalidValue('Secret %s: tls.key is encrypted; HAProxy needs an unencrypted key' % secret_id)
    kind = _key_kind(label, block)
    if kind == 'unreadable':
        raise InvalidValue('Secret %s: tls.key is not a PEM private key (its PKCS#8 structure cannot be read)'
                           % secret_id)
    if kind == 'other':
        raise InvalidValue('Secret %s: tls.key is neither an RSA nor an ECDSA key; HAProxy serves RSA and ECDSA keys'
                           % secret_id)
    try:
        key = _load_key(block)
    except TypeError:
        raise InvalidValue('Secret %s: tls.key is encrypted; HAProxy needs an unencrypted key' % secret_id)
    except ValueError as exc:
        raise InvalidValue('Secret %s: tls.key is not a PEM private key (%s)' % (secret_id, exc))
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise InvalidValue('Secret %s: tls.key is a %s key; HAProxy serves RSA and ECDSA keys'
                           % (secret_id, type(key).__name__.replace('PrivateKey', '').lstrip('_')))
    # What HAProxy's OpenSSL loads at its default security level.
    if isinstance(key, rsa.RSAPrivateKey) and not 2048 <= key.key_size <= MAX_RSA_BITS:
        raise InvalidValue('Secret %s: tls.key is an RSA key of %d bits; HAProxy needs 2048 to %d'
                           % (secret_id, key.key_size, MAX_RSA_BITS))
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _CURVES:
        raise InvalidValue('Secret %s: tls.key is on curve %s; use one of %s'
                           % (secret_id, key.curve.name, ', '.join(_CURVES)))
    return key


def _check_strength(certificate, secret_id, position):
    """Refuse what HAProxy's OpenSSL (security level 2) refuses to load, so that one tenant's Secret
    cannot make haproxy -c fail the whole configuration: weak keys anywhere in the chain, and
    MD5 or SHA-1 signatures on certificates that are not self-signed."""
    what = 'the leaf' if position == 0 else 'certificate %d of the chain' % (position + 1)
    key = certificate.public_key()
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
        if not 2048 <= key.key_size <= 16384:
            raise InvalidValue('Secret %s: %s has %s key of %d bits; HAProxy needs 2048 or more'
                               % (secret_id, what, 'an RSA' if isinstance(key, rsa.RSAPublicKey) else 'a DSA', key.key_size))
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.key_size < 224:
            raise InvalidValue('Secret %s: %s has an EC key on curve %s; HAProxy needs 224 bits or more'
                               % (secret_id, what, key.curve.name))
    elif not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise InvalidValue('Secret %s: %s has a key HAProxy cannot use' % (secret_id, what))
    if certificate.issuer != certificate.subject:
        algorithm = certificate.signature_hash_algorithm
        if algorithm is not None and algorithm.name in ('md5', 'sha1'):
            raise InvalidValue('Secret %s: %s is signed with %s, which HAProxy refuses'
                               % (secret_id, what, algorithm.name.upper().replace('SHA', 'SHA-')))


def _public_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def haproxy_name(value):
    """A certificate name as HAProxy indexes it for SNI: cut at a NUL (a C string), lowercased."""
    return value.split('\x00', 1)[0].lower() if isinstance(value, str) else ''


def certificate_names(certificate, secret_id):
    """Every name HAProxy selects this certificate by: each DNS subjectAltName AND each common name.

    Names that are not DNS names or "*." wildcards are left out: no SNI of a valid host matches them.
    """
    try:
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = list(alt.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    names += [attr.value for attr in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    if len(names) > MAX_NAMES:
        raise InvalidValue('Secret %s: the certificate names %d hosts; at most %d are accepted'
                           % (secret_id, len(names), MAX_NAMES))
    return sorted(set(name for name in (haproxy_name(n) for n in names) if len(name) <= 253 and _NAME.match(name)))


def _not_after(certificate):
    moment = getattr(certificate, 'not_valid_after_utc', None)
    if moment is None:
        moment = certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return moment


def _not_before(certificate):
    moment = getattr(certificate, 'not_valid_before_utc', None)
    if moment is None:
        moment = certificate.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    return moment


def read_tls_secret(secret, now=None):
    """(bundle, facts) from a Secret object, or InvalidValue naming the Secret and the reason.

    bundle: the certificate chain then the key, re-encoded as PEM (bytes).
    facts: secret, file, names, not_after, expired, not_before, not_yet_valid and the leaf's sha256 fingerprint.
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
        raise InvalidValue('Secret %s is of type %s, not %s' % (secret_id, _show(secret.get('type')), TLS_SECRET_TYPE))
    budget = _Budget(secret_id)
    data = secret.get('data') if isinstance(secret.get('data'), dict) else {}
    certificates = _certificates(_field(data, 'tls.crt', secret_id, MAX_CERTIFICATE_BYTES), secret_id, budget)
    key = _private_key(_field(data, 'tls.key', secret_id, MAX_KEY_BYTES), secret_id)
    budget.check()
    for position, certificate in enumerate(certificates):
        _check_strength(certificate, secret_id, position)
    if _public_der(key.public_key()) != _public_der(certificates[0].public_key()):
        raise InvalidValue('Secret %s: tls.key does not belong to the first certificate of tls.crt' % secret_id)
    not_after, not_before = _not_after(certificates[0]), _not_before(certificates[0])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    bundle = b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    bundle += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    facts = {
        'secret': secret_id,
        # named by content: a renewed Secret is a new file, so the configuration that binds it
        # changes, is validated with it, and a restored previous configuration finds its own file
        'file': certificate_file(namespace, name, hashlib.sha256(bundle).hexdigest()[:12]),
        'names': certificate_names(certificates[0], secret_id),
        'not_after': not_after.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'expired': not_after < now,
        # a certificate issued ahead of time (or on a host whose clock is behind): clients refuse it
        'not_before': not_before.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'not_yet_valid': not_before > now,
        'fingerprint': hashlib.sha256(certificates[0].public_bytes(serialization.Encoding.DER)).hexdigest(),
        # HAProxy picks an ECDSA certificate before an RSA one, whichever name matches better
        'key_type': 'rsa' if isinstance(key, rsa.RSAPrivateKey) else 'ecdsa',
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
