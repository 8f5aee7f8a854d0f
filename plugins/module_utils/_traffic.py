# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which nodes serve each backend and how HAProxy checks them.

Private to this collection. externalTrafficPolicy Local sends traffic only to nodes
with a ready endpoint (kube-proxy drops it elsewhere); subsetting caps the nodes per
backend by rendezvous hashing, so a node that comes or goes moves only its own share.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue, port_number

# kube-proxy's own health endpoint: 503 when it is stale or the node is being deleted.
KUBE_PROXY_HEALTH_PORT = 10256
HEALTH_PATH = '/healthz'
_MASK = (1 << 64) - 1


def ready_nodes_by_service(slices):
    """(namespace, service) -> set of node names hosting a ready endpoint."""
    ready = {}
    for endpoint_slice in slices:
        key = (endpoint_slice.get('namespace'), endpoint_slice.get('service'))
        ready.setdefault(key, set()).update(endpoint_slice.get('ready_nodes') or [])
    return ready


def local_nodes(ready_by_service, eligible_names):
    """(namespace, service) -> the sorted eligible nodes with a ready endpoint.

    Costs as much as the endpoints, not services x nodes: each service's nodes are looked up in
    the eligible ones, and sorted once.
    """
    eligible = set(eligible_names)
    return dict((key, sorted(name for name in ready if name in eligible)) for key, ready in ready_by_service.items())


def serving_nodes(candidate, local):
    """"all", or the sorted eligible nodes with a ready endpoint for a Local-policy service (see local_nodes)."""
    if candidate.get('traffic_policy') != 'Local':
        return 'all'
    return list(local.get((candidate['namespace'], candidate['service_name']), ()))


def health_check(candidate, options):
    """How HAProxy checks each server of the backend.

    Local-policy LoadBalancer services have a healthCheckNodePort where kube-proxy answers
    200 only on nodes with a local endpoint; otherwise optionally kube-proxy's /healthz,
    else a TCP connect to the nodePort.
    """
    if candidate.get('traffic_policy') == 'Local' and candidate.get('health_check_node_port') is not None:
        try:
            port = port_number(candidate['health_check_node_port'], 'healthCheckNodePort')
            return {'type': 'http', 'port': port, 'path': HEALTH_PATH}
        except InvalidValue:
            pass
    if options.get('check_kube_proxy'):
        return {'type': 'http', 'port': KUBE_PROXY_HEALTH_PORT, 'path': HEALTH_PATH}
    return {'type': 'tcp'}


def _key(text):
    return int(hashlib.sha256(text.encode('utf-8')).hexdigest()[:16], 16)


def _mix(value):
    """splitmix64's finaliser: spreads the xor of two keys over all 64 bits."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK
    return value ^ (value >> 31)


class Subsetter:
    """Picks at most `size` nodes per backend by rendezvous (highest random weight) hashing."""

    def __init__(self, size, node_names):
        self.size = size
        self.node_keys = dict((name, _key(name)) for name in node_names)

    def pick(self, backend_name, names):
        if not self.size or len(names) <= self.size:
            return names
        backend_key = _key(backend_name)
        keys = self.node_keys
        ranked = sorted(names, key=lambda name: (_mix(backend_key ^ keys[name]), name), reverse=True)
        return sorted(ranked[:self.size])
