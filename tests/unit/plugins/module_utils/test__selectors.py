"""Label selectors matched locally must agree with the API server's grammar and meaning."""

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _selectors

keys = st.sampled_from(['app', 'tier', 'example.com/public', 'env'])
values = st.sampled_from(['web', 'db', 'yes', 'no', ''])
labels = st.dictionaries(keys, values, max_size=4)


@st.composite
def requirements(draw):
    key = draw(keys)
    op = draw(st.sampled_from(['=', '==', '!=', 'in', 'notin', 'exists', '!']))
    if op in ('in', 'notin'):
        chosen = draw(st.lists(values.filter(bool), min_size=1, max_size=3, unique=True))
        return '%s %s (%s)' % (key, op, ','.join(chosen)), (key, op, frozenset(chosen))
    if op == 'exists':
        return key, (key, op, frozenset())
    if op == '!':
        return '!' + key, (key, op, frozenset())
    value = draw(values)
    return '%s%s%s' % (key, op, value), (key, '=' if op == '==' else op, frozenset([value]))


def reference(requirement, labels):
    key, op, chosen = requirement
    if op == 'exists':
        return key in labels
    if op == '!':
        return key not in labels
    if op in ('=', 'in'):
        return key in labels and labels[key] in chosen
    return key not in labels or labels[key] not in chosen


@given(st.lists(requirements(), min_size=1, max_size=4), labels)
def test_parse_and_match_agree_with_the_reference(parts, labels):
    text = ','.join(p[0] for p in parts)
    parsed = _selectors.parse(text)
    assert parsed == [p[1] for p in parts]
    assert _selectors.matches(parsed, labels) == all(reference(p[1], labels) for p in parts)


def test_empty_selector_matches_everything():
    assert _selectors.matches(_selectors.parse(''), {'a': 'b'})
    assert _selectors.matches(_selectors.parse(None), {})


@pytest.mark.parametrize('text', ['a=b=c', 'in (x)', 'a in x', 'a b', '=x', 'a in (x y)', 'a=b\x00'])
def test_malformed_selectors_are_refused(text):
    with pytest.raises(_selectors.SelectorError):
        _selectors.parse(text)
