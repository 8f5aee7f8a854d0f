# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the cluster (API or snapshot) into the slim records the model needs.

Private to this collection. Each raw object is reduced as soon as it is read, so
whole Kubernetes objects never pile up in memory or reach Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.portico.k8s.plugins.module_utils import _selectors
from ansible_collections.portico.k8s.plugins.module_utils._client import (
    KubeClient,
    KubeError,
    parse_json_body,
)

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

EXPOSED_TYPES = ('NodePort', 'LoadBalancer')


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _sequence(value):
    return value if isinstance(value, list) else []


def slim_node(obj):
    """The fields of a Node that node eligibility reads."""
    obj = _mapping(obj)
    metadata, spec, status = (_mapping(obj.get(k)) for k in ('metadata', 'spec', 'status'))
    ready = None
    for condition in _sequence(status.get('conditions')):
        if _mapping(condition).get('type') == 'Ready':
            ready = condition.get('status')
    return {
        'name': metadata.get('name'),
        'labels': _mapping(metadata.get('labels')),
        'ready': ready,
        'addresses': [[_mapping(a).get('type'), _mapping(a).get('address')]
                      for a in _sequence(status.get('addresses'))],
        'unschedulable': spec.get('unschedulable') is True,
        'deleting': bool(metadata.get('deletionTimestamp')),
        'taints': sorted(str(_mapping(t).get('key')) for t in _sequence(spec.get('taints'))),
    }


def slim_service(obj):
    """The fields of a Service that the routing model reads."""
    obj = _mapping(obj)
    metadata, spec = _mapping(obj.get('metadata')), _mapping(obj.get('spec'))
    return {
        'namespace': metadata.get('namespace'),
        'name': metadata.get('name'),
        'created': metadata.get('creationTimestamp') or '',
        'type': spec.get('type') or 'ClusterIP',
        'ports': [{
            'name': _mapping(p).get('name') or '',
            'protocol': _mapping(p).get('protocol') or 'TCP',
            'port': _mapping(p).get('port'),
            'node_port': _mapping(p).get('nodePort'),
        } for p in _sequence(spec.get('ports'))],
        'external_traffic_policy': spec.get('externalTrafficPolicy') or 'Cluster',
        'health_check_node_port': spec.get('healthCheckNodePort'),
    }


class ServiceFilter:
    """Which services to consider: exposed types, namespaces, label selector, JMESPath filter."""

    def __init__(self, namespaces=None, label_selector=None, expression=None):
        self.namespaces = frozenset(namespaces or [])
        self.label_selector = label_selector or None
        try:
            self.selector = _selectors.parse(label_selector)
        except _selectors.SelectorError as exc:
            raise KubeError('label_selector: %s' % exc)
        self.expression = None
        if expression:
            if not HAS_JMESPATH:
                raise KubeError('the filter option needs the jmespath Python library')
            try:
                self.expression = jmespath.compile(expression)
            except jmespath.exceptions.JMESPathError as exc:
                raise KubeError('filter %r is not a valid JMESPath expression: %s' % (expression, exc))
        self.seen = 0
        self.other_types = 0

    def __call__(self, obj, local=True):
        """The slim service if it is a candidate for exposure, else None.

        local: also apply namespaces and label_selector (the API server did not).
        """
        self.seen += 1
        spec = _mapping(_mapping(obj).get('spec'))
        if spec.get('type') not in EXPOSED_TYPES:
            self.other_types += 1
            return None
        metadata = _mapping(obj.get('metadata'))
        if local and self.namespaces and metadata.get('namespace') not in self.namespaces:
            return None
        if local and self.selector and not _selectors.matches(self.selector, _mapping(metadata.get('labels'))):
            return None
        if self.expression is not None and not self.expression.search(obj):
            return None
        return slim_service(obj)


def read_api(settings, service_filter, timeout=30, page_size=500):
    """Nodes and candidate services from the API server."""
    client = KubeClient(settings, timeout=timeout, page_size=page_size)
    try:
        nodes, version = client.list('nodes', slim_node)
        services = []
        if service_filter.namespaces:
            for namespace in sorted(service_filter.namespaces):
                found, dummy = client.list('services', lambda o: service_filter(o, local=False),
                                           namespace=namespace, selector=service_filter.label_selector)
                services.extend(found)
        else:
            services, dummy = client.list('services', lambda o: service_filter(o, local=False),
                                          selector=service_filter.label_selector)
    finally:
        client.close()
    return nodes, services, {'kind': 'api', 'server': client.server, 'resource_version': version}


def read_snapshot(path, service_filter):
    """Nodes and candidate services from a v1 List file (kubectl get nodes,services -A -o json)."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise KubeError('cannot read snapshot %s: %s' % (path, exc))
    document = parse_json_body(data, 'snapshot %s' % path)
    if not isinstance(document, dict) or not isinstance(document.get('items'), list):
        raise KubeError('snapshot %s is not a Kubernetes List (no items array); make it with '
                        '"kubectl get nodes,services -A -o json"' % path)
    nodes, services = [], []
    for obj in document['items']:
        kind = _mapping(obj).get('kind')
        if kind == 'Node':
            nodes.append(slim_node(obj))
        elif kind == 'Service':
            service = service_filter(obj, local=True)
            if service is not None:
                services.append(service)
    return nodes, services, {'kind': 'snapshot', 'snapshot': path}
