"""The collection's quality gates: ansible-test sanity, ansible-lint, changelog fragments."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command, timeout=1200, env=None):
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    return result, result.stdout + result.stderr


NEWEST = REPO / '.venv-newest' / 'bin'


@pytest.mark.slow
@pytest.mark.parametrize('venv', ['', '.venv-newest'], ids=['oldest', 'newest'])
def test_ansible_test_sanity_passes(venv):
    """On the oldest supported ansible-core (.venv) and the newest (.venv-newest, Python 3.12+)."""
    env = dict(os.environ, VENV=venv) if venv else None
    result, output = run('bash', 'scripts/ansible-test.sh', 'sanity', env=env)
    assert result.returncode == 0, output[-6000:]
    assert 'ERROR' not in output.replace('ERROR: Found 0', '')
    # complete: shellcheck (which the setup installs) checked the scripts
    assert 'Running sanity test "shellcheck"' in output and not re.search(r'(?i)skipping[^\n]*shellcheck', output)


@pytest.mark.slow
def test_ansible_test_units_passes():
    """ansible-test units runs tests/unit from the tree it builds (its own ansible_collections path),
    in the setup's virtualenv (tests/unit/requirements.txt) and a network namespace of its own."""
    result, output = run(str(REPO / 'scripts' / 'netns-python'), 'scripts/ansible-test.sh', 'units', '--local',
                         '--num-workers', '2', timeout=1200, env=dict(os.environ, NETNS_PYTHON='/bin/bash'))
    assert result.returncode == 0, output[-6000:]
    counts = [int(n) for n in re.findall(r'=+ (\d+) passed', output)]
    assert counts and sum(counts) > 400 and ' failed' not in output and 'skipped' not in output, output[-3000:]


@pytest.mark.slow
def test_ansible_test_integration_targets_pass():
    """tests/integration/targets (the module, the lookup, the filter and the status writer on a
    snapshot: check mode, errors) run as ansible-test integration runs a collection's targets."""
    result, output = run(str(REPO / 'scripts' / 'netns-python'), 'scripts/ansible-test.sh', 'integration', '--local',
                         timeout=900, env=dict(os.environ, NETNS_PYTHON='/bin/bash'))
    assert result.returncode == 0, output[-6000:]
    ran = re.findall(r'Running (\S+) integration test role', output)
    assert sorted(ran) == ['load_balancer_status', 'nodeport_info', 'nodeports_lookup'], output[-3000:]
    assert 'failed=0' in output and not re.search(r'failed=[1-9]', output)


def test_ansible_lint_production_profile_passes():
    result, output = run(str(BIN / 'ansible-lint'), '--profile', 'production', 'roles', 'playbooks', timeout=300)
    assert result.returncode == 0, output[-6000:]
    assert 'Profile \'production\' was required, and it passed' in output


def test_changelog_fragments_are_valid():
    result, output = run(str(BIN / 'antsibull-changelog'), 'lint', timeout=120)
    assert result.returncode == 0, output


@pytest.mark.slow
def test_the_end_to_end_sync_and_the_built_collection_pass_on_the_newest_ansible_core():
    """The main job against real HAProxy, and the tarball (install, docs, Galaxy's import, the
    sync from it), run again with the newest ansible-core; the rest of the suite runs on the oldest."""
    assert (NEWEST / 'python').exists(), 'no .venv-newest: install a Python 3.12 or later and run make setup'
    version, dummy = run(str(NEWEST / 'python'), '-c', 'import ansible; print(ansible.__version__)')
    assert version.returncode == 0, version.stdout + version.stderr
    assert tuple(int(part) for part in version.stdout.split('.')[:2]) >= (2, 20), version.stdout
    # in a network namespace of its own, as the other end-to-end tests run: nothing it starts
    # meets what runs beside it
    result, output = run(str(REPO / 'scripts' / 'netns-python'), '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                         'tests/e2e/test_sync.py', 'tests/e2e/test_collection.py', timeout=900,
                         env=dict(os.environ, NETNS_PYTHON=str(NEWEST / 'python')))
    assert result.returncode == 0, output[-6000:]
    assert ' passed' in output and 'skipped' not in output, output[-2000:]


def _version(text):
    return tuple(int(part) for part in str(text).split('.'))


def test_the_version_the_changelog_and_every_version_added_agree():
    """A version in galaxy.yml is either released (in changelog.yaml, no fragments pending) or
    next (not released yet, fragments pending); nothing says it was added in a later version."""
    import yaml
    version = yaml.safe_load((REPO / 'galaxy.yml').read_text())['version']
    releases = yaml.safe_load((REPO / 'changelogs' / 'changelog.yaml').read_text())['releases']
    pending = [p.name for p in (REPO / 'changelogs' / 'fragments').glob('*.y*ml')]
    if pending:
        assert version not in releases, 'fragments %s are pending, but %s is already released' % (pending, version)
        assert _version(version) > max(_version(v) for v in releases)
    else:
        assert version == max(releases, key=_version), 'no fragments pending, so %s must be the latest release' % version
    found = re.findall(r'version_added: *[\'"]?([0-9.]+)', ''.join(
        p.read_text() for pattern in ('plugins/**/*.py', 'extensions/eda/plugins/**/*.py', 'roles/*/meta/*.yml')
        for p in REPO.glob(pattern)))
    assert found and all(_version(v) <= _version(version) for v in found), sorted(set(found))
