# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fingerprints of the routing-relevant part of Nodes, Services and EndpointSlices.

Private to this collection. A watch sees every write to an object: node heartbeats,
image lists, managedFields, status of pods behind a service. Only a change of what the
routing model reads may trigger a sync, so each object (decoded into the fields _fields declares)
is reduced with the same slim_* functions the model is built from, and the reduced record is hashed. RoutingState keeps
one fingerprint per object and says whether an event (or a relist) changed routing.
Pure Python: no I/O, no Kubernetes client.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.portico.k8s.plugins.module_utils._addresses import FIELD_MANAGER
from ansible_collections.portico.k8s.plugins.module_utils._cluster import (
    EXPOSED_TYPES,
    _mapping,
    slim_endpointslice,
    slim_node,
    slim_service,
)

NODE, SERVICE, ENDPOINT_SLICE = 'Node', 'Service', 'EndpointSlice'
KINDS = (NODE, SERVICE, ENDPOINT_SLICE)


def digest(value):
    """A stable hash of a JSON-like value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def object_key(obj):
    """namespace/name for namespaced objects, name for cluster-scoped ones."""
    metadata = _mapping(_mapping(obj).get('metadata'))
    name = metadata.get('name') or ''
    namespace = metadata.get('namespace')
    return '%s/%s' % (namespace, name) if namespace else name


def node_fingerprint(obj):
    """Changes only when what node eligibility reads changes (not on heartbeats)."""
    return digest(slim_node(obj))


def candidate_service(obj, service_filter=None):
    """The slim service if obj is exposed (and passes service_filter), else None."""
    if service_filter is not None:
        return service_filter(obj, local=True)
    spec = _mapping(_mapping(obj).get('spec'))
    return slim_service(obj) if spec.get('type') in EXPOSED_TYPES else None


def routing_record(slim):
    """A slim service without what changes on every write (uid, resourceVersion), and without the
    status Portico itself wrote (its own status writes must not trigger another sync) or the
    status of a Service that is not a LoadBalancer (nothing reads it)."""
    record = dict((k, v) for k, v in slim.items() if k not in ('uid', 'resource_version', 'status_manager'))
    if slim.get('status_manager') == FIELD_MANAGER or slim.get('type') != 'LoadBalancer':
        record['ingress'] = []
    return record


def service_fingerprint(obj, service_filter=None):
    """The fingerprint of an exposed service, None for one the model ignores."""
    slim = candidate_service(obj, service_filter)
    return None if slim is None else digest(routing_record(slim))


def endpointslice_fingerprint(obj):
    return digest(slim_endpointslice(obj))


def _in_scope(key, namespace):
    return namespace is None or key.startswith(namespace + '/')


class RoutingState:
    """The routing-relevant state of a cluster as seen through watches.

    apply() takes one watch event and returns whether routing changed; replace() takes a
    fresh list of one kind (after a reconnect or a 410) and returns how many objects
    changed routing since the state was last known.
    """

    def __init__(self, service_filter=None):
        self.service_filter = service_filter
        self.nodes = {}       # name -> fingerprint
        self.services = {}    # namespace/name -> (fingerprint, Local policy?)
        self.slices = {}      # namespace/slice -> (namespace/service, ready node names)
        self._by_service = {}  # namespace/service -> {namespace/slice: ready node names}

    # ------------------------------------------------------------ one object

    def apply(self, kind, event_type, obj):
        """Apply an ADDED/MODIFIED/DELETED event; True when routing changed."""
        key = object_key(obj)
        deleted = event_type == 'DELETED'
        if kind == NODE:
            return self._set(self.nodes, key, None if deleted else node_fingerprint(obj))
        if kind == SERVICE:
            return self._set(self.services, key, None if deleted else self._service_entry(obj))
        if kind == ENDPOINT_SLICE:
            service = self._slice_entry(obj)[0] if not deleted else (self.slices.get(key) or (None,))[0]
            before = self.ready_nodes(service)
            self._set_slice(key, None if deleted else self._slice_entry(obj))
            return self.is_local(service) and self.ready_nodes(service) != before
        raise ValueError('unknown kind %r' % (kind,))

    def _service_entry(self, obj):
        slim = candidate_service(obj, self.service_filter)
        if slim is None:
            return None
        return (digest(routing_record(slim)), slim.get('external_traffic_policy') == 'Local')

    @staticmethod
    def _slice_entry(obj):
        slim = slim_endpointslice(obj)
        return ('%s/%s' % (slim['namespace'], slim['service']), tuple(slim['ready_nodes']))

    @staticmethod
    def _set(table, key, value):
        old = table.get(key)
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
        return old != value

    def _set_slice(self, key, entry):
        old = self.slices.pop(key, None)
        if old is not None:
            siblings = self._by_service.get(old[0], {})
            siblings.pop(key, None)
            if not siblings:
                self._by_service.pop(old[0], None)
        if entry is not None:
            self.slices[key] = entry
            self._by_service.setdefault(entry[0], {})[key] = entry[1]

    def is_local(self, service):
        entry = self.services.get(service)
        return bool(entry and entry[1])

    def ready_nodes(self, service):
        """The nodes with a ready endpoint of service (namespace/name), over all its slices."""
        nodes = set()
        for ready in self._by_service.get(service, {}).values():
            nodes.update(ready)
        return frozenset(nodes)

    # ------------------------------------------------------------ a whole list

    def _view(self, kind, namespace):
        if kind == NODE:
            return dict(self.nodes)
        if kind == SERVICE:
            return dict((k, v) for k, v in self.services.items() if _in_scope(k, namespace))
        return dict((service, self.ready_nodes(service)) for service in self._by_service
                    if _in_scope(service, namespace) and self.is_local(service))

    def replace(self, kind, objects, namespace=None):
        """Replace every object of kind (in namespace, if given) by objects; returns the changes."""
        before = self._view(kind, namespace)
        if kind == NODE:
            self.nodes = dict((object_key(o), node_fingerprint(o)) for o in objects)
        elif kind == SERVICE:
            for key in [k for k in self.services if _in_scope(k, namespace)]:
                del self.services[key]
            for obj in objects:
                self._set(self.services, object_key(obj), self._service_entry(obj))
        elif kind == ENDPOINT_SLICE:
            for key in [k for k in self.slices if _in_scope(k, namespace)]:
                self._set_slice(key, None)
            for obj in objects:
                self._set_slice(object_key(obj), self._slice_entry(obj))
        else:
            raise ValueError('unknown kind %r' % (kind,))
        after = self._view(kind, namespace)
        return sum(1 for key in set(before) | set(after) if before.get(key) != after.get(key))

    def fingerprint(self):
        """One hash of the whole routing-relevant state (for logs and tests)."""
        local = dict((s, sorted(self.ready_nodes(s))) for s in self._by_service if self.is_local(s))
        return digest([sorted(self.nodes.items()), sorted((k, list(v)) for k, v in self.services.items()),
                       sorted(local.items())])
