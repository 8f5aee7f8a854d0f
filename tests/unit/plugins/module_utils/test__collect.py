# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model as JSON text: what Ansible masks in a dict result is masked in the text too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from hypothesis import given, settings, strategies as st

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.portico.k8s.plugins.module_utils._collect import model_text

MODEL = {'source': {'kind': 'api', 'server': 'https://10.0.0.1:6443'},
         'nodes': [{'name': 'worker-1', 'address': '192.0.2.21'}],
         'excluded_services': [{'service': 'shop/web', 'port': None, 'reason': 'annotation x is "y"'}],
         'summary': {'nodes': 1}}


def test_the_text_is_the_model_when_nothing_hidden_shows():
    assert json.loads(model_text(MODEL, {'s3cr3t-token'})) == MODEL


def test_a_hidden_value_in_the_model_is_masked_as_ansible_masks_a_dict():
    model = dict(MODEL, nodes=[{'name': 'tok-1234', 'address': '192.0.2.21'}])
    assert json.loads(model_text(model, {'tok-1234'})) == remove_values(model, {'tok-1234'})
    assert 'tok-1234' not in model_text(model, {'tok-1234'})


def test_a_hidden_value_that_is_part_of_the_json_itself_is_refused():
    with pytest.raises(ValueError, match='use model_format=dict'):
        model_text(MODEL, {'null'})


def test_a_hidden_value_that_json_escapes_is_found_and_masked():
    hidden = 'a"b\\c\u00e9'
    model = dict(MODEL, excluded_services=[{'service': 'x/y', 'port': None, 'reason': 'has %s in it' % hidden}])
    text = model_text(model, {hidden})
    assert json.dumps(hidden)[1:-1] not in text
    assert json.loads(text) == remove_values(model, {hidden})


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=20),
       st.sets(st.text(min_size=3, max_size=6), max_size=3))
def test_the_text_reads_back_as_the_dict_result_would_be(model, hidden):
    # Ansible masks the dict; masking the text gives the same values back, and none shows
    try:
        text = model_text(model, hidden)
    except ValueError as exc:
        # a hidden value in a key or in JSON's own words: refused, never half masked
        assert 'no_log value' in str(exc)
        masked = json.dumps(remove_values(model, hidden))
        assert any(value in masked or json.dumps(value)[1:-1] in masked for value in hidden)
        return
    assert json.loads(text) == remove_values(model, hidden)
    for value in hidden:
        assert value not in text and json.dumps(value)[1:-1] not in text
