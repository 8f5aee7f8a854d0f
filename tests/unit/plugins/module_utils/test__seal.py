"""Sealed TLS bundles: only this run's key and the right file name open them."""

import base64

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _seal

KEY = 'k' * 43


@given(st.binary(max_size=4096), st.text(min_size=1, max_size=60))
def test_a_sealed_bundle_opens_with_its_key_and_name(data, name):
    sealed = _seal.seal(KEY, name, data)
    assert sealed.isascii()
    if len(data) >= 16:
        assert data not in base64.b64decode(sealed)
    assert _seal.unseal(KEY, name, sealed) == data


def test_another_key_another_name_or_a_changed_text_does_not_open_it():
    sealed = _seal.seal(KEY, 'shop_web.0123456789ab.pem', b'-----BEGIN PRIVATE KEY-----')
    for key, name, text in ((KEY[:-1] + 'x', 'shop_web.0123456789ab.pem', sealed),
                            (KEY, 'shop_other.0123456789ab.pem', sealed),
                            (KEY, 'shop_web.0123456789ab.pem', sealed[:-4] + 'AAAA'),
                            (KEY, 'shop_web.0123456789ab.pem', 'not base64 at all')):
        with pytest.raises(_seal.SealError) as caught:
            _seal.unseal(key, name, text)
        assert 'does not open with this run\'s key' in str(caught.value)
        assert 'PRIVATE' not in str(caught.value)


def test_two_seals_of_one_bundle_differ():
    assert _seal.seal(KEY, 'a.pem', b'x') != _seal.seal(KEY, 'a.pem', b'x')


@pytest.mark.parametrize('key', ['', 'short', None, 7])
def test_a_weak_key_is_refused(key):
    with pytest.raises(_seal.SealError, match='at least 32 characters'):
        _seal.seal(key, 'a.pem', b'x')
