"""execution-environment.yml: the build context ansible-builder makes from it, and what a build would install.

No container engine runs here, so ``ansible-builder build`` is not run. ``ansible-builder create``
writes the same context a build uses; the test checks it, then replays the two steps of the build
that decide what goes into the image, with the same tools: the galaxy stage
(``ansible-galaxy collection install -r requirements.yml`` in ``/build``, the copy of ``_build``)
and the builder stage's ``introspect.py``, which merges the requirements the installed collections
advertise in meta/execution-environment.yml with the definition's own.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(not (BIN / 'ansible-builder').exists(), reason='ansible-builder is not installed')


def run(*command, cwd, env=None):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8S_AUTH_'))}
    env.update(extra)
    return env


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    root = tmp_path_factory.mktemp('ee')
    run(str(BIN / 'ansible-builder'), 'create', '--file', str(REPO / 'execution-environment.yml'),
        '--context', str(root / 'context'), '--output-filename', 'Containerfile', cwd=root, env=clean_env())
    return root / 'context'


@pytest.fixture(scope='module')
def galaxy_stage(context, tmp_path_factory):
    """The collections path the image would get: the galaxy stage's install, run on the context."""
    path = tmp_path_factory.mktemp('ee-collections')
    run(str(BIN / 'ansible-galaxy'), 'collection', 'install', '-r', 'requirements.yml', '--collections-path', str(path),
        cwd=context / '_build', env=clean_env(ANSIBLE_LOCAL_TEMP=str(path / '.tmp')))
    return path


def test_the_definition_is_version_3_with_ansible_core_and_runner():
    definition = yaml.safe_load((REPO / 'execution-environment.yml').read_text())
    assert definition['version'] == 3
    dependencies = definition['dependencies']
    assert dependencies['ansible_core']['package_pip'].startswith('ansible-core')
    assert dependencies['ansible_runner']['package_pip'].startswith('ansible-runner')
    assert dependencies['python'] == 'requirements.txt' and dependencies['system'] == 'bindep.txt'


def test_the_containerfile_installs_python_collections_and_system_packages(context):
    text = (context / 'Containerfile').read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in text
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19 ansible-runner' in text
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in text
    assert 'COPY _build/requirements.txt requirements.txt' in text
    assert 'COPY _build/bindep.txt bindep.txt' in text
    assert 'introspect --user-pip=requirements.txt --user-bindep=bindep.txt' in text
    assert 'RUN /output/scripts/install-from-bindep' in text
    assert 'LABEL ansible-execution-environment=true' in text


def test_the_python_and_system_requirements_are_the_collections(context):
    assert (context / '_build' / 'requirements.txt').read_text() == (REPO / 'requirements.txt').read_text()
    assert (context / '_build' / 'bindep.txt').read_text() == (REPO / 'bindep.txt').read_text()
    names = [line.split('>=')[0] for line in (REPO / 'requirements.txt').read_text().splitlines()
             if line and not line.startswith('#')]
    assert {'kubernetes', 'jmespath', 'msgspec'} <= set(names)
    packages = [line.split()[0] for line in (REPO / 'bindep.txt').read_text().splitlines()
                if line and not line.startswith('#')]
    assert 'haproxy' in packages


def test_the_collection_requirement_is_this_checkout_copied_into_the_context(context):
    requirements = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert requirements == {'collections': [{'name': './portico.k8s', 'type': 'dir'}]}
    copy = context / '_build' / 'portico.k8s'
    assert yaml.safe_load((copy / 'galaxy.yml').read_text())['name'] == 'k8s'
    # Every part of the collection that a run needs is in the copy.
    for part in ('plugins', 'roles', 'playbooks', 'meta', 'extensions'):
        if (REPO / part).is_dir():
            wanted = {p.relative_to(REPO / part) for p in (REPO / part).rglob('*')
                      if p.is_file() and '__pycache__' not in p.parts}
            copied = {p.relative_to(copy / part) for p in (copy / part).rglob('*') if p.is_file()}
            assert wanted <= copied, part


def test_the_galaxy_stage_installs_portico_k8s(galaxy_stage):
    installed = galaxy_stage / 'ansible_collections' / 'portico' / 'k8s'
    for wanted in ('MANIFEST.json', 'playbooks/sync.yml', 'roles/haproxy_sync/tasks/main.yml',
                   'plugins/modules/nodeport_info.py', 'plugins/lookup/nodeports.py',
                   'meta/runtime.yml', 'meta/execution-environment.yml', 'requirements.txt', 'bindep.txt'):
        assert (installed / wanted).is_file(), wanted


def test_the_installed_collection_advertises_its_requirements_to_ansible_builder(context, galaxy_stage):
    metadata = yaml.safe_load((REPO / 'meta' / 'execution-environment.yml').read_text())
    assert metadata == {'version': 1, 'dependencies': {'python': 'requirements.txt', 'system': 'bindep.txt'}}
    build = context / '_build'
    result = run(sys.executable, str(build / 'scripts' / 'introspect.py'), 'introspect', '--user-pip=requirements.txt',
                 '--user-bindep=bindep.txt', str(galaxy_stage), cwd=build, env=clean_env())
    found = yaml.safe_load(result.stdout)
    python = [line for line in found['python'] if line.endswith('# from collection portico.k8s')]
    system = [line for line in found['system'] if line.endswith('# from collection portico.k8s')]
    assert any(line.startswith('kubernetes>=') for line in python), found
    assert any(line.startswith('jmespath>=') for line in python), found
    assert any(line.startswith('msgspec>=') for line in python), found
    assert not any(line.startswith('ansible-core') for line in python)  # ansible_core installs it
    assert any(line.startswith('haproxy ') for line in system), found
