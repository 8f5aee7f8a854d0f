# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which nodes may receive traffic, and at which address.

Private to this collection. Every rule lives in ``node_exclusion`` and names itself
in the reason, so an operator can tell why a node is out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portico.k8s.plugins.module_utils._names import (
    InvalidValue,
    node_name,
    server_address,
)

DEFAULT_ADDRESS_TYPES = ('InternalIP', 'ExternalIP')


def node_address(node, address_types=DEFAULT_ADDRESS_TYPES):
    """The first valid address of the most preferred type, in HAProxy notation.

    Returns (address, None) or (None, reason).
    """
    problems = []
    for wanted in address_types:
        for address_type, address in node.get('addresses') or []:
            if address_type != wanted:
                continue
            try:
                return server_address(address, address_type), None
            except InvalidValue as exc:
                problems.append(str(exc))
    if problems:
        return None, 'no usable address: %s' % '; '.join(problems)
    return None, 'no address of type %s' % ' or '.join(address_types)


def node_exclusion(node, options):
    """The reason a node may not receive traffic, or None if it may."""
    try:
        node_name(node.get('name'))
    except InvalidValue as exc:
        return 'invalid: %s' % exc
    ready = node.get('ready')
    if ready != 'True':
        return 'not Ready (Ready condition is %s)' % (ready if ready in ('False', 'Unknown') else 'missing')
    return None


def eligible_nodes(nodes, options):
    """Split slim nodes into (eligible, excluded), both sorted by name.

    eligible: [{'name', 'address'}]; excluded: [{'name', 'reason'}].
    """
    address_types = options.get('address_types') or DEFAULT_ADDRESS_TYPES
    # A name listed twice (only a hand-made snapshot can) is ambiguous: both copies are out.
    counts = {}
    for node in nodes:
        key = repr(node.get('name'))
        counts[key] = counts.get(key, 0) + 1
    eligible, excluded = [], []
    for node in nodes:
        name = node.get('name')
        reason = node_exclusion(node, options)
        if reason is None and counts[repr(name)] > 1:
            reason = 'duplicate node name'
        address = None
        if reason is None:
            address, reason = node_address(node, address_types)
        if reason is None:
            eligible.append({'name': name, 'address': address})
        else:
            excluded.append({'name': name if isinstance(name, str) else repr(name), 'reason': reason})
    eligible.sort(key=lambda n: n['name'])
    excluded.sort(key=lambda n: (n['name'], n['reason']))
    return eligible, excluded
