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

from ansible_collections.portico.k8s.plugins.module_utils import _fields, _selectors
from ansible_collections.portico.k8s.plugins.module_utils._annotations import ANNOTATIONS, DEFAULT_PREFIX, MAX_VALUE_LENGTH
from ansible_collections.portico.k8s.plugins.module_utils._client import (
    KubeClient,
    KubeError,
    SecretForbidden,
    parse_json_body,
)
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue
from ansible_collections.portico.k8s.plugins.module_utils._tls import read_tls_secret

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

EXPOSED_TYPES = ('NodePort', 'LoadBalancer')
# The label that ties an EndpointSlice to its Service.
SERVICE_NAME_LABEL = 'kubernetes.io/service-name'


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _sequence(value):
    return value if isinstance(value, list) else []


def slim_node(obj):
    """The fields of a Node that node eligibility reads (_fields.NODE declares them)."""
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


def prefixed_annotations(metadata, prefix=DEFAULT_PREFIX):
    """Only the annotations under prefix, keys without it; values cut to MAX_VALUE_LENGTH + 1.

    Other annotations (last-applied-configuration and the like) can be huge and are never kept.
    """
    found = {}
    for key, value in _mapping(metadata.get('annotations')).items():
        if isinstance(key, str) and key.startswith(prefix):
            found[key[len(prefix):]] = value[:MAX_VALUE_LENGTH + 1] if isinstance(value, str) else value
    return found


def _ingress(status):
    """status.loadBalancer.ingress as the model compares it: ip or hostname, ipMode, ports."""
    found = []
    for entry in _sequence(_mapping(_mapping(status).get('loadBalancer')).get('ingress')):
        entry = _mapping(entry)
        kept = dict((key, entry[key]) for key in ('ip', 'hostname', 'ipMode') if key in entry)
        if 'ports' in entry:
            kept['ports'] = [dict((k, v) for k, v in _mapping(p).items() if k in ('port', 'protocol'))
                             for p in _sequence(entry.get('ports'))]
        found.append(kept)
    return found


def status_manager(metadata):
    """The field manager that last wrote status.loadBalancer.ingress, from managedFields; None if none."""
    for entry in _sequence(metadata.get('managedFields')):
        entry = _mapping(entry)
        fields = _mapping(_mapping(_mapping(entry.get('fieldsV1')).get('f:status')).get('f:loadBalancer'))
        if entry.get('subresource') == 'status' and 'f:ingress' in fields:
            return entry.get('manager')
    return None


def _port(port):
    port = _mapping(port)
    return {'name': port.get('name') or '', 'protocol': port.get('protocol') or 'TCP', 'port': port.get('port'),
            'node_port': port.get('nodePort')}


def slim_service(obj, prefix=DEFAULT_PREFIX):
    """The fields of a Service that the routing model reads (_fields.SERVICE declares them)."""
    obj = _mapping(obj)
    metadata, spec = _mapping(obj.get('metadata')), _mapping(obj.get('spec'))
    return {
        'namespace': metadata.get('namespace'),
        'name': metadata.get('name'),
        'uid': metadata.get('uid'),
        'resource_version': metadata.get('resourceVersion'),
        # a timestamp that is not text (a hand-made snapshot) counts as missing: it is only sorted by
        'created': metadata.get('creationTimestamp') if isinstance(metadata.get('creationTimestamp'), str) else '',
        'type': spec.get('type') or 'ClusterIP',
        'ports': [_port(p) for p in _sequence(spec.get('ports'))],
        'external_traffic_policy': spec.get('externalTrafficPolicy') or 'Cluster',
        'health_check_node_port': spec.get('healthCheckNodePort'),
        'annotations': prefixed_annotations(metadata, prefix),
        'load_balancer_class': spec.get('loadBalancerClass'),
        'load_balancer_ip': spec.get('loadBalancerIP') or None,
        'ip_families': [f for f in _sequence(spec.get('ipFamilies')) if isinstance(f, str)],
        'ingress': _ingress(obj.get('status')),
        'status_manager': status_manager(metadata),
    }


class ServiceFilter:
    """Which services to consider: exposed types, namespaces, label selector, JMESPath filter."""

    def __init__(self, namespaces=None, label_selector=None, expression=None, annotation_prefix=DEFAULT_PREFIX):
        self.annotation_prefix = annotation_prefix or DEFAULT_PREFIX
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

    @property
    def whole(self):
        """Whether services must be read with every field: a JMESPath filter may read any."""
        return self.expression is not None

    def __call__(self, obj, local=True):
        """The slim service if it is a candidate for exposure, else None.

        local: also apply namespaces and label_selector (the API server did not).
        """
        self.seen += 1
        spec = _mapping(_mapping(obj).get('spec'))
        if spec.get('type') not in EXPOSED_TYPES:
            return None
        metadata = _mapping(obj.get('metadata'))
        if local and self.namespaces and metadata.get('namespace') not in self.namespaces:
            return None
        if local and self.selector and not _selectors.matches(self.selector, _mapping(metadata.get('labels'))):
            return None
        if self.expression is not None and not self.expression.search(obj):
            return None
        return slim_service(obj, self.annotation_prefix)


def slim_endpointslice(obj):
    """The service an EndpointSlice belongs to and the nodes that host its ready endpoints.

    An endpoint whose ready condition is unset counts as ready, as the API documents.
    _fields.ENDPOINT_SLICE declares the fields read.
    """
    obj = _mapping(obj)
    namespace, service = _slice_service(obj)
    return {'namespace': namespace, 'service': service, 'ready_nodes': _ready_nodes(obj)}


def _slice_service(obj):
    metadata = _mapping(obj.get('metadata'))
    return metadata.get('namespace'), _mapping(metadata.get('labels')).get(SERVICE_NAME_LABEL)


def _ready_nodes(obj):
    nodes = set()
    for endpoint in _sequence(obj.get('endpoints')):
        endpoint = _mapping(endpoint)
        if _mapping(endpoint.get('conditions')).get('ready') is not False and isinstance(endpoint.get('nodeName'), str):
            nodes.add(endpoint['nodeName'])
    return sorted(nodes)


def _named(key):
    """Whether both parts of a (namespace, name) key are text: a malformed answer may hold anything
    there, and such an object names nothing (the model says why a service is out)."""
    return all(isinstance(part, str) for part in key)


def _local_services(services):
    return set(key for key in ((s['namespace'], s['name']) for s in services if s['external_traffic_policy'] == 'Local')
               if _named(key))


def _slices_of(local_services):
    """A reducer keeping only the slices of Local-policy services (the others' endpoints are not read)."""
    def reduce(obj):
        obj = _mapping(obj)
        key = _slice_service(obj)
        if not _named(key) or key not in local_services:
            return None
        return {'namespace': key[0], 'service': key[1], 'ready_nodes': _ready_nodes(obj)}
    return reduce


def node_filter(node_selector):
    """A reducer for nodes matching node_selector (applied locally, for snapshots)."""
    try:
        requirements = _selectors.parse(node_selector)
    except _selectors.SelectorError as exc:
        raise KubeError('node_selector: %s' % exc)

    def reduce(obj):
        if requirements and not _selectors.matches(requirements, _mapping(_mapping(_mapping(obj).get('metadata')).get('labels'))):
            return None
        return slim_node(obj)
    return reduce


def wanted_secrets(services):
    """(namespace, name) of each Secret a valid tls-secret annotation names."""
    wanted = set()
    for service in services:
        name = (service.get('annotations') or {}).get('tls-secret')
        try:
            ANNOTATIONS['tls-secret'][0](name)
        except InvalidValue:
            continue  # the model reports the bad value
        if isinstance(service.get('namespace'), str):
            wanted.add((service['namespace'], name))
    return sorted(wanted)


def load_secrets(services, read):
    """{(namespace, name): {'bundle': PEM bytes, 'facts': {...}} or {'error': reason}}.

    read(namespace, name) returns the Secret object or None, or raises SecretForbidden.
    """
    loaded = {}
    for namespace, name in wanted_secrets(services):
        try:
            secret = read(namespace, name)
            if secret is None:
                raise InvalidValue('Secret %s/%s not found' % (namespace, name))
            bundle, facts = read_tls_secret(secret)
            loaded[(namespace, name)] = {'bundle': bundle, 'facts': facts}
        except (InvalidValue, SecretForbidden) as exc:
            loaded[(namespace, name)] = {'error': str(exc)}
    return loaded


def read_api(settings, service_filter, node_selector=None, timeout=30, page_size=500):
    """Nodes, candidate services, the slices of Local-policy services and the TLS Secrets
    the services name, from the API server."""
    node_filter(node_selector)  # a bad selector fails here, before any request
    client = KubeClient(settings, timeout=timeout, page_size=page_size)
    namespaces = sorted(service_filter.namespaces) or [None]
    # The reducers read only the declared fields and keep none of an item: without msgspec they
    # read each page as json.loads gave it (projected=False), not a copy of its declared fields.
    try:
        nodes, version = client.list('nodes', slim_node, selector=node_selector or None, projected=False)
        services, slices = [], []
        for namespace in namespaces:
            found, dummy = client.list('services', lambda o: service_filter(o, local=False),
                                       namespace=namespace, selector=service_filter.label_selector,
                                       whole=service_filter.whole, projected=False)
            services.extend(found)
        local = _local_services(services)
        # EndpointSlices are read only when a Local-policy service needs them.
        if local:
            slice_namespaces = sorted(set(ns for ns, dummy in local)) if service_filter.namespaces else [None]
            for namespace in slice_namespaces:
                found, dummy = client.list('endpointslices', _slices_of(local), namespace=namespace,
                                           projected=False)
                slices.extend(found)
        # Secrets are read one by one, by name: "get" on them is all the account needs.
        secrets = load_secrets(services, client.read_secret)
    finally:
        client.close()
    return nodes, services, slices, {'kind': 'api', 'server': client.server, 'resource_version': version}, secrets


def read_snapshot(path, service_filter, node_selector=None):
    """Nodes, candidate services, slices and TLS Secrets from a v1 List file.

    Made with ``kubectl get nodes,services,endpointslices -A -o json`` (add the Secrets that
    tls-secret annotations name, if any).
    """
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise KubeError('cannot read snapshot %s: %s' % (path, exc))
    document = parse_json_body(data, 'snapshot %s' % path,
                               _fields.reader('snapshot', whole=service_filter.whole))
    if not isinstance(document, dict) or not isinstance(document.get('items'), list):
        raise KubeError('snapshot %s is not a Kubernetes List (no items array); make it with '
                        '"kubectl get nodes,services,endpointslices -A -o json"' % path)
    kinds = {}
    for obj in document['items']:
        kind = _mapping(obj).get('kind')
        kind = kind if isinstance(kind, str) else None
        kinds[kind] = kinds.get(kind, 0) + 1
    if not kinds.get('Node') and not kinds.get('Service'):
        # an empty model that a fresh load balancer would install: not a cluster, whatever it is
        held = ', '.join('%d %s' % (count, kind if isinstance(kind, str) else 'without a kind')
                         for kind, count in sorted(kinds.items(), key=lambda item: (not isinstance(item[0], str), str(item[0]))))
        raise KubeError('snapshot %s holds no Node and no Service (%s), so it is not a snapshot of a cluster; '
                        'make it with "kubectl get nodes,services,endpointslices -A -o json"; nothing was changed'
                        % (path, 'it is an empty List' if not held else 'only ' + held))
    keep_node = node_filter(node_selector)
    nodes, services, raw_slices, secrets = [], [], [], {}
    for obj in document['items']:
        kind = _mapping(obj).get('kind')
        if kind == 'Node':
            node = keep_node(obj)
            if node is not None:
                nodes.append(node)
        elif kind == 'Service':
            service = service_filter(obj, local=True)
            if service is not None:
                services.append(service)
        elif kind == 'EndpointSlice':
            raw_slices.append(obj)
        elif kind == 'Secret':
            metadata = _mapping(obj.get('metadata'))
            key = (metadata.get('namespace'), metadata.get('name'))
            if _named(key):
                secrets[key] = obj
    reduce = _slices_of(_local_services(services))
    slices = [s for s in (reduce(obj) for obj in raw_slices) if s is not None]
    loaded = load_secrets(services, lambda namespace, name: secrets.get((namespace, name)))
    return nodes, services, slices, {'kind': 'snapshot', 'snapshot': path}, loaded
