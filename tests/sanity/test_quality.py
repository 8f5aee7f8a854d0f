"""The collection's quality gates: ansible-test sanity, ansible-lint, changelog fragments."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command, timeout=1200, env=None):
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    return result, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('core', ['', '2.18'], ids=['installed', 'ansible-core-2.18'])
def test_ansible_test_sanity_passes(core):
    """On every ansible-core release meta/runtime.yml admits (2.18 and the installed 2.19)."""
    env = dict(os.environ, ANSIBLE_CORE=core) if core else None
    result, output = run('bash', 'scripts/ansible-test.sh', 'sanity', env=env)
    assert result.returncode == 0, output[-6000:]
    assert 'ERROR' not in output.replace('ERROR: Found 0', '')


def test_ansible_lint_production_profile_passes():
    result, output = run(str(BIN / 'ansible-lint'), '--profile', 'production', 'roles', 'playbooks', timeout=300)
    assert result.returncode == 0, output[-6000:]
    assert 'Profile \'production\' was required, and it passed' in output


def test_changelog_fragments_are_valid():
    result, output = run(str(BIN / 'antsibull-changelog'), 'lint', timeout=120)
    assert result.returncode == 0, output
