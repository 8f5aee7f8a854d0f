"""Real TLS clients for end-to-end tests, and a poll for answers that settle after a reload."""

import contextlib
import shutil
import socket
import ssl
import subprocess
import time

from cryptography import x509

OPENSSL = shutil.which('openssl')


def s_client(address, port, servername):
    """What ``openssl s_client -servername`` prints for a handshake with address:port (certificate subjects included)."""
    result = subprocess.run([OPENSSL, 's_client', '-connect', '%s:%d' % (address, port), '-servername', servername],
                            input='', capture_output=True, text=True, timeout=10, check=False)
    return result.stdout


def served_certificate(address, port, servername):
    """The leaf certificate a TLS server presents for servername, as a cryptography object."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with contextlib.closing(socket.create_connection((address, port), timeout=3)) as raw:
        with context.wrap_socket(raw, server_hostname=servername) as conn:
            return x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))


def until(probe, expected, tries=50, step=0.2):
    """probe() until its answer contains ``expected``; the last answer either way."""
    for dummy in range(tries):
        answer = probe()
        if expected in answer:
            return answer
        time.sleep(step)
    return answer
