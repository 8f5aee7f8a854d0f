"""The collection as users get it: built with ansible-galaxy into a tarball and installed into a clean path."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args, env, cwd, timeout=180):
    """Run one of the virtualenv's commands; fails the test, with its output, when it fails."""
    result = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def build_and_install(root):
    """Build the tarball into root and install it into root/collections, in an Ansible environment
    that knows nothing of this checkout (its own ansible.cfg, no ANSIBLE_* or K8S_AUTH_* variables).

    Returns (env, tarball): env runs ansible commands against the installed collection only.
    """
    root = Path(root)
    (root / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = false\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8S_AUTH_'))}
    env.update({'ANSIBLE_CONFIG': str(root / 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1',
                'ANSIBLE_COLLECTIONS_PATH': str(root / 'collections'),
                'ANSIBLE_LOCAL_TEMP': str(root / 'tmp'), 'ANSIBLE_REMOTE_TEMP': str(root / 'tmp'),
                'PATH': '%s:%s:/usr/sbin:/sbin' % (BIN, os.environ.get('PATH', ''))})
    run('ansible-galaxy', 'collection', 'build', '--output-path', str(root), str(REPO), env=env, cwd=root)
    version = next(line.split(':', 1)[1].strip() for line in (REPO / 'galaxy.yml').read_text().splitlines()
                   if line.startswith('version:'))
    tarball = root / ('portico-k8s-%s.tar.gz' % version)
    run('ansible-galaxy', 'collection', 'install', str(tarball), '-p', str(root / 'collections'), env=env, cwd=root)
    return env, tarball
