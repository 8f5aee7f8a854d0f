"""Certificates for tests of TLS termination: self-signed leaves or a small CA chain, as PEM bytes."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)


def private_key(kind='ec'):
    """kind: ec (P-256), ec-k1 (secp256k1), rsa (2048 bits), rsa-1024 or ed25519."""
    if kind.startswith('rsa'):
        return rsa.generate_private_key(public_exponent=65537, key_size=1024 if kind == 'rsa-1024' else 2048)
    if kind == 'ed25519':
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256K1() if kind == 'ec-k1' else ec.SECP256R1())


def key_pem(key, password=None):
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _certificate(subject_cn, names, key, issuer_cn, issuer_key, not_after, ca=False, not_before=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    common_names = subject_cn if isinstance(subject_cn, (list, tuple)) else [subject_cn]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or min(now, not_after) - DAY)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def certificate(names, kind='ec', days=30, chain=False, cn=None, valid_in=None):
    """(certificate chain PEM, key PEM, leaf) for DNS names; chain adds an issuing CA after the leaf.

    cn: the subject's common name(s), by default the first name. valid_in: days until the leaf
    becomes valid (notBefore in the future), for a leaf that is not valid yet.
    """
    key = private_key(kind)
    not_after = datetime.datetime.now(datetime.timezone.utc) + days * DAY
    not_before = None if valid_in is None else datetime.datetime.now(datetime.timezone.utc) + valid_in * DAY
    cn = cn or names[0]
    if not chain:
        leaf = _certificate(cn, names, key, cn if isinstance(cn, str) else cn[0], key, not_after, not_before=not_before)
        return leaf.public_bytes(serialization.Encoding.PEM), key_pem(key), leaf
    ca_key = private_key('ec')
    ca = _certificate('Portico test CA', [], ca_key, 'Portico test CA', ca_key, not_after + DAY, ca=True)
    leaf = _certificate(cn, names, key, 'Portico test CA', ca_key, not_after)
    pem = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    return pem, key_pem(key), leaf
