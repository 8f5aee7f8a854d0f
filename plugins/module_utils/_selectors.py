# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes label selectors, parsed and matched locally.

Private to this collection. The API server applies ``label_selector`` itself; a
snapshot has no server, so the same selector is matched here with the same grammar.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_KEY = r'([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?'
_VALUE = r'([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?'
_SET = re.compile(r'\A(?P<key>%s)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\Z' % _KEY)
_EQ = re.compile(r'\A(?P<key>%s)\s*(?P<op>==|=|!=)\s*(?P<value>%s)\Z' % (_KEY, _VALUE))
_EXISTS = re.compile(r'\A(?P<neg>!?)\s*(?P<key>%s)\Z' % _KEY)
_VALUE_ONLY = re.compile(r'\A%s\Z' % _VALUE)


class SelectorError(ValueError):
    """A label selector that does not parse; str() says where."""


def _split(text):
    """Split on commas that are not inside a set's parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
        if char == ',' and depth == 0:
            parts.append(''.join(current))
            current = []
        else:
            current.append(char)
    parts.append(''.join(current))
    return [part.strip() for part in parts]


def parse(selector):
    """Parse a selector into a list of (key, operator, values); empty matches everything."""
    if not selector or not selector.strip():
        return []
    requirements = []
    for part in _split(selector):
        match = _SET.match(part)
        if match:
            values = [v.strip() for v in match.group('values').split(',')]
            if not all(_VALUE_ONLY.match(v) for v in values):
                raise SelectorError('invalid values in %r' % part)
            requirements.append((match.group('key'), match.group('op'), frozenset(values)))
            continue
        match = _EQ.match(part)
        if match:
            op = '!=' if match.group('op') == '!=' else '='
            requirements.append((match.group('key'), op, frozenset([match.group('value')])))
            continue
        match = _EXISTS.match(part)
        if match:
            requirements.append((match.group('key'), '!' if match.group('neg') else 'exists', frozenset()))
            continue
        raise SelectorError('cannot parse %r in label selector %r' % (part, selector))
    return requirements


def matches(requirements, labels):
    """True if labels (a dict) satisfy every requirement."""
    labels = labels or {}
    for key, op, values in requirements:
        present = key in labels
        if op == 'exists' and not present:
            return False
        if op == '!' and present:
            return False
        if op in ('=', 'in') and (not present or labels[key] not in values):
            return False
        if op in ('!=', 'notin') and present and labels[key] in values:
            return False
    return True
