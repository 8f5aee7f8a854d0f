"""Real TLS clients for end-to-end tests, and a poll for answers that settle after a reload."""

import shutil
import subprocess
import time

OPENSSL = shutil.which('openssl')


def s_client(address, port, servername):
    """What ``openssl s_client -servername`` prints for a handshake with address:port (certificate subjects included)."""
    result = subprocess.run([OPENSSL, 's_client', '-connect', '%s:%d' % (address, port), '-servername', servername],
                            input='', capture_output=True, text=True, timeout=10, check=False)
    return result.stdout


def until(probe, expected, tries=50, step=0.2):
    """probe() until its answer contains ``expected``; the last answer either way."""
    for dummy in range(tries):
        answer = probe()
        if expected in answer:
            return answer
        time.sleep(step)
    return answer
