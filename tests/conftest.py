# ---- fakeapi fixtures: begin (owned by tests/fakeapi; keep this block self-contained) ----
import os as _fakeapi_os
import pathlib as _fakeapi_pathlib

import pytest as _fakeapi_pytest

from tests.fakeapi import objects as fakeapi_objects
from tests.fakeapi.server import FakeKubeAPI

_FAKEAPI_ROOT = _fakeapi_pathlib.Path(__file__).resolve().parent.parent


@_fakeapi_pytest.fixture(scope="session")
def fakeapi_certdir(tmp_path_factory):
    """A directory where the first FakeKubeAPI makes ca.pem and server.pem, reused after."""
    return tmp_path_factory.mktemp("fakeapi-certs")


@_fakeapi_pytest.fixture
def fakeapi(fakeapi_certdir):
    """A running FakeKubeAPI with no objects but the system namespaces; stopped after the test."""
    with FakeKubeAPI(fakeapi_certdir) as api:
        yield api


@_fakeapi_pytest.fixture
def fakeapi_cluster(fakeapi):
    """The running FakeKubeAPI serving objects.sample_cluster() (4 nodes, 7 services, 1 slice)."""
    fakeapi.load_list(fakeapi_objects.sample_cluster())
    return fakeapi


@_fakeapi_pytest.fixture
def fakeapi_kubeconfig(fakeapi, tmp_path):
    """A kubeconfig file for the running FakeKubeAPI, with its valid token."""
    return fakeapi.write_kubeconfig(tmp_path / "kubeconfig")


@_fakeapi_pytest.fixture(scope="session")
def fakeapi_captures_dir():
    """The recorded kube-apiserver responses in tests/data ($PORTICO_K8S_FIXTURES for others)."""
    default = _fakeapi_pathlib.Path(__file__).resolve().parent / "data" / "kube-apiserver-1.36"
    path = _fakeapi_pathlib.Path(_fakeapi_os.environ.get("PORTICO_K8S_FIXTURES") or default)
    if not path.is_dir():
        _fakeapi_pytest.fail(f"no recorded kube-apiserver responses at {path}")
    return path.resolve()
# ---- fakeapi fixtures: end ----


# ---- hypothesis: no per-example deadline (a loaded CI machine is slow, not wrong) ----
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile('portico', deadline=None)
_hypothesis_settings.load_profile('portico')
