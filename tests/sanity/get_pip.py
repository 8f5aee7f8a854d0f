"""Stands in for pip's get-pip.py when ansible-test bootstraps pip in its virtualenvs.

ansible-test downloads get-pip.py from a host outside the package registries; this does the
same job with the interpreter's ensurepip and the package index pip is configured for.
"""

import subprocess
import sys

# Flags of get-pip.py that plain pip install does not know.
ARGS = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + ARGS)
