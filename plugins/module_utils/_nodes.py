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
ADDRESS_FAMILIES = ('any', 'ipv4', 'ipv6')
# The standard label that takes a node out of every external load balancer.
EXCLUDE_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers'
CONTROL_PLANE_LABELS = ('node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/master')
# The cluster autoscaler's taint on a node it is about to delete.
AUTOSCALER_DELETE_TAINT = 'ToBeDeletedByClusterAutoscaler'


def _family(address):
    """The family of an address in HAProxy notation; host names count as any."""
    if address.startswith('['):
        return 'ipv6'
    if address.replace('.', '').isdigit():
        return 'ipv4'
    return 'any'


def node_address(node, address_types=DEFAULT_ADDRESS_TYPES, family='any'):
    """The first valid address of the most preferred type (and family), in HAProxy notation.

    Returns (address, None) or (None, reason).
    """
    problems, wrong_family = [], []
    for wanted in address_types:
        for address_type, address in node.get('addresses') or []:
            if address_type != wanted:
                continue
            try:
                parsed = server_address(address, address_type)
            except InvalidValue as exc:
                problems.append(str(exc))
                continue
            if family != 'any' and _family(parsed) not in (family, 'any'):
                wrong_family.append(parsed)
                continue
            return parsed, None
    if problems:
        return None, 'no usable address: %s' % '; '.join(problems)
    if wrong_family:
        return None, 'no %s address of type %s (has %s)' % (family, ' or '.join(address_types), ', '.join(wrong_family))
    return None, 'no address of type %s' % ' or '.join(address_types)


def node_exclusion(node, options):
    """The reason a node may not receive traffic, or None if it may.

    Rules in order; the first that applies names itself in the reason.
    """
    try:
        node_name(node.get('name'))
    except InvalidValue as exc:
        return 'invalid: %s' % exc
    labels = node.get('labels') or {}
    if node.get('deleting'):
        return 'being deleted (deletionTimestamp is set)'
    if AUTOSCALER_DELETE_TAINT in (node.get('taints') or []):
        return 'marked for deletion by the cluster autoscaler (taint %s)' % AUTOSCALER_DELETE_TAINT
    ready = node.get('ready')
    if ready != 'True':
        return 'not Ready (Ready condition is %s)' % (ready if ready in ('False', 'Unknown') else 'missing')
    if EXCLUDE_LABEL in labels:
        return 'labelled %s' % EXCLUDE_LABEL
    if not options.get('include_control_plane'):
        for label in CONTROL_PLANE_LABELS:
            if label in labels:
                return 'control-plane node (label %s); set include_control_plane to use it' % label
    if node.get('unschedulable') and options.get('exclude_cordoned'):
        return 'cordoned (spec.unschedulable) and exclude_cordoned is set'
    return None


def eligible_nodes(nodes, options):
    """Split slim nodes into (eligible, excluded), both sorted by name.

    eligible: [{'name', 'address'}]; excluded: [{'name', 'reason'}].
    """
    address_types = options.get('address_types') or DEFAULT_ADDRESS_TYPES
    family = options.get('address_family') or 'any'
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
            address, reason = node_address(node, address_types, family)
        if reason is None:
            eligible.append({'name': name, 'address': address})
        else:
            excluded.append({'name': name if isinstance(name, str) else repr(name), 'reason': reason})
    eligible.sort(key=lambda n: n['name'])
    excluded.sort(key=lambda n: (n['name'], n['reason']))
    return eligible, excluded
