# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Graceful removal: a node that leaves the eligible set drains before it goes.

Private to this collection. The previous run's served nodes come back in as ``drain_state``;
a node that was served and no longer is stays in the backends with weight 0 (no new
connections, existing ones go on) until a later run at least ``drain_seconds`` after it left.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portico.k8s.plugins.module_utils._names import (
    InvalidValue,
    node_name,
    server_address,
)


def _address(text):
    """A stored address back through the allow-list (it is in HAProxy notation)."""
    if isinstance(text, str) and text.startswith('[') and text.endswith(']'):
        return server_address(text[1:-1], 'InternalIP')
    return server_address(text, 'InternalIP' if isinstance(text, str) and text[:1].isdigit() else 'Hostname')


def _entries(values):
    """Valid {name, address, since} entries of a stored list; anything else is dropped."""
    found = {}
    for entry in values if isinstance(values, list) else []:
        try:
            name = node_name(entry.get('name'))
            address = _address(entry.get('address'))
        except (InvalidValue, AttributeError):
            continue
        since = entry.get('since')
        found[name] = {'name': name, 'address': address,
                       'since': since if isinstance(since, int) and not isinstance(since, bool) else None}
    return found


def draining_nodes(drain_state, eligible, now, drain_seconds=0):
    """Nodes served last run but not eligible now, still within their drain, sorted by name."""
    if not isinstance(drain_state, dict):
        return []
    eligible_names = set(node['name'] for node in eligible)
    draining = {}
    for name, entry in _entries(drain_state.get('draining_nodes')).items():
        since = entry['since'] if entry['since'] is not None else now
        if name not in eligible_names and now - since < drain_seconds:
            draining[name] = dict(entry, since=since)
    for name, entry in _entries(drain_state.get('nodes')).items():
        if name not in eligible_names and name not in draining:
            draining[name] = dict(entry, since=now)
    return [draining[name] for name in sorted(draining)]
