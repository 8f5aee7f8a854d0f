"""The fields Portico reads, declared once: msgspec and the standard library read the same records, and
the model is byte-identical with and without msgspec, whatever shape the objects have."""

import copy
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _client, _cluster, _collect, _fields, _fingerprint
from tests.fakeapi import objects

pytestmark = pytest.mark.skipif(not _fields.HAS_MSGSPEC, reason='compares msgspec with the standard library')


def both(function):
    """function() with msgspec, then with the standard library forced (the switch the module documents)."""
    was = _fields.USE_MSGSPEC
    try:
        _fields.USE_MSGSPEC = True
        fast = function()
        _fields.USE_MSGSPEC = False
        return fast, function()
    finally:
        _fields.USE_MSGSPEC = was


def text(value):
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------- generated clusters

names = st.sampled_from(['w1', 'w2', 'w3', 'web', 'db', 'cp-1', 'Bad Name', 'x' * 70, 'caf\u00e9'])
namespaces = st.sampled_from(['shop', 'team-a', 'default', 'NS'])
# what a cluster user or a broken proxy could put where Portico expects something else
odd_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


@st.composite
def nodes(draw):
    name = draw(names)
    addresses = ['10.0.0.%d' % draw(st.integers(1, 9)), 'fd00::5', '010.0.0.1', 'bad']
    return objects.node(name, internal_ips=draw(st.sampled_from(addresses)),
                        ready=draw(st.sampled_from([True, True, False, None])),
                        roles=draw(st.sampled_from([(), ('control-plane',)])),
                        unschedulable=draw(st.booleans()),
                        labels=draw(st.sampled_from([None, {'node.kubernetes.io/exclude-from-external-load-balancers': ''},
                                                     {'zone': 'a\u00ef'}])))


@st.composite
def services(draw):
    stype = draw(st.sampled_from(['NodePort', 'LoadBalancer', 'ClusterIP']))
    ports = [objects.service_port(draw(st.integers(1, 40)), name=draw(st.sampled_from(['http', 'dns', 'p%d' % i])),
                                  protocol=draw(st.sampled_from(['TCP', 'TCP', 'UDP'])),
                                  node_port=draw(st.integers(30000, 30040)) if stype != 'ClusterIP' else None)
             for i in range(draw(st.integers(0, 3)))]
    keys = st.sampled_from(['portico.io/mode', 'portico.io/expose', 'portico.io/hosts', 'portico.io/balance', 'other/x'])
    values = st.sampled_from(['http', 'tcp', 'false', 'a.example.com', 'leastconn', '\u00e9'])
    annotations = draw(st.dictionaries(keys, values, max_size=2))
    return objects.service(
        draw(names).lower().replace(' ', '-')[:20], draw(namespaces), type=stype, ports=ports,
        external_traffic_policy=draw(st.sampled_from([None, 'Local'])) if stype != 'ClusterIP' else None,
        health_check_node_port=draw(st.sampled_from([None, 32000])) if stype == 'LoadBalancer' else None,
        load_balancer_ingress=draw(st.sampled_from([(), ('203.0.113.7',), ('lb.example.com',)])),
        annotations=annotations or None, created=draw(st.sampled_from(['2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z'])),
        allocate=False)


@st.composite
def slices(draw, service_objects):
    if not service_objects:
        return []
    found = []
    for svc in draw(st.lists(st.sampled_from(service_objects), max_size=3)):
        endpoints = [objects.endpoint('10.244.0.%d' % i, node_name=draw(names), ready=draw(st.sampled_from([True, False, None])))
                     for i in range(draw(st.integers(0, 3)))]
        found.append(objects.endpointslice(svc['metadata']['name'], svc['metadata']['namespace'], endpoints=endpoints,
                                           name='%s-%d' % (svc['metadata']['name'], len(found))))
    return found


def _paths(value, prefix=()):
    """Every path into value's dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, prefix + (index,))


@st.composite
def odd(draw, obj):
    """obj, or obj with one value (anywhere, declared or not) replaced by a value of another shape."""
    if not draw(st.integers(0, 3)) == 0:
        return obj
    obj = copy.deepcopy(obj)
    path = draw(st.sampled_from([p for p in _paths(obj) if p]))
    inner = obj
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = draw(odd_values)
    return obj


@st.composite
def clusters(draw):
    node_objects = [draw(odd(n)) for n in draw(st.lists(nodes(), max_size=5))]
    service_objects = draw(st.lists(services(), max_size=6))
    slice_objects = [draw(odd(s)) for s in draw(slices(service_objects))]
    return node_objects, [draw(odd(s)) for s in service_objects], slice_objects


def _body(value, ascii_only):
    return json.dumps(value, ensure_ascii=ascii_only).encode('utf-8')


# ---------------------------------------------------------------- the property

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(clusters(), st.booleans())
def test_the_model_is_byte_identical_with_and_without_msgspec(tmp_path, cluster, ascii_only):
    node_objects, service_objects, slice_objects = cluster
    path = tmp_path / 'snapshot.json'
    items = node_objects + service_objects + slice_objects
    path.write_bytes(_body({'apiVersion': 'v1', 'kind': 'List', 'metadata': {'resourceVersion': ''}, 'items': items},
                           ascii_only))
    options = {'snapshot': str(path), 'address_types': ['InternalIP', 'ExternalIP'], 'allow_no_nodes': True}

    def model():
        try:
            found = _collect.collect_model(options.get)
        except Exception as exc:  # pylint: disable=broad-except
            # the same error either way, a clear one or not
            return '%s: %s' % (type(exc).__name__, exc)
        found['source'].pop('read_at')
        return text(found)
    fast, slow = both(model)
    event('a model' if fast.startswith('{') else fast.split(':')[0])
    assert fast == slow


def _local_of(service_objects):
    found = (_cluster.ServiceFilter()(obj, local=False) for obj in service_objects)
    return _cluster._local_services([slim for slim in found if slim is not None])  # pylint: disable=protected-access


# what read_api reduces each list's items with
_REDUCERS = {
    'nodes': lambda service_objects: _cluster.slim_node,
    'services': lambda service_objects: lambda obj: _cluster.ServiceFilter()(obj, local=False),
    'endpointslices': lambda service_objects: _cluster._slices_of(_local_of(service_objects)),  # pylint: disable=protected-access
}


@settings(max_examples=150, deadline=None)
@given(clusters(), st.booleans())
def test_list_pages_and_watch_events_read_the_same_records_either_way(cluster, ascii_only):
    for resource, kind, items in zip(('nodes', 'services', 'endpointslices'), ('NodeList', 'ServiceList', 'EndpointSliceList'),
                                     cluster):
        page = {'kind': kind, 'apiVersion': 'v1', 'metadata': {'resourceVersion': '7', 'continue': 'abc'},
                'items': [dict((k, v) for k, v in item.items() if k not in ('kind', 'apiVersion')) for item in items]}
        body = _body(page, ascii_only)
        fast, slow = both(lambda: text(_fields.reader(resource)(body)))
        assert fast == slow
        # the module's list path: without msgspec the reducers read the page as json.loads gave it
        reduce = _REDUCERS[resource](cluster[1])
        fast, slow = both(lambda: text([reduce(item) for item in _fields.reader(resource)(body, projected=False)['items']]))
        assert fast == slow
        for item in items:
            line = _body({'type': 'MODIFIED', 'object': item}, ascii_only)
            fast, slow = both(lambda: text(_fields.reader('watch:' + resource)(line)))
            assert fast == slow


@settings(max_examples=150, deadline=None)
@given(clusters())
def test_the_declared_fields_are_all_the_records_read(cluster):
    # a slim record or fingerprint from the declared fields equals the one from the whole object:
    # a reader of a field that is not declared would make them differ
    node_objects, service_objects, slice_objects = cluster
    for obj in node_objects:
        assert _cluster.slim_node(_fields.project(obj, _fields.NODE)) == _cluster.slim_node(obj)
        assert _fingerprint.node_fingerprint(_fields.project(obj, _fields.NODE)) == _fingerprint.node_fingerprint(obj)
    service_filter = _cluster.ServiceFilter(label_selector='app')
    for obj in service_objects:
        slim = _fields.project(obj, _fields.SERVICE)
        assert service_filter(slim) == service_filter(obj)
        assert _fingerprint.service_fingerprint(slim) == _fingerprint.service_fingerprint(obj)
        assert _fingerprint.object_key(slim) == _fingerprint.object_key(obj)
    for obj in slice_objects:
        slim = _fields.project(obj, _fields.ENDPOINT_SLICE)
        assert _cluster.slim_endpointslice(slim) == _cluster.slim_endpointslice(obj)
        assert _fingerprint.object_key(slim) == _fingerprint.object_key(obj)


# ---------------------------------------------------------------- what msgspec refuses, json reads as before

@pytest.mark.parametrize('body', [
    b'{"kind": "NodeList", "items": [{"metadata": {"name": "w1", "labels": ["a"]}, "status": null}]}',
    b'{"kind": "NodeList", "items": [{"metadata": {"name": NaN}}]}',
    b'{"kind": "NodeList", "items": [{"metadata": {"name": 1e400}}]}',
    b'{"kind": "NodeList", "items": [{"metadata": {"name": "\\ud800"}}]}',
    b'{"kind": "NodeList", "items": [{"metadata": {"name": "w1"}, "junk": "\xff"}]}',
    b'{"kind": "NodeList", "items": "none"}',
    b'\xef\xbb\xbf{"kind": "NodeList", "items": []}',
])
def test_bodies_msgspec_refuses_are_read_as_the_standard_library_reads_them(body):
    def read():
        try:
            return text(_client.parse_json_body(body, 'listing nodes', _fields.reader('nodes')))
        except _client.KubeError as exc:
            return str(exc)
    fast, slow = both(read)
    assert fast == slow


def test_a_node_of_odd_shape_gives_the_record_it_gave_before():
    body = b'{"kind": "NodeList", "items": [{"metadata": {"name": "w1", "labels": ["a"]}, "status": {"addresses": "x"}}]}'
    page = _fields.reader('nodes')(body)
    assert _cluster.slim_node(page['items'][0]) == _cluster.slim_node(json.loads(body)['items'][0])
    assert _cluster.slim_node(page['items'][0])['labels'] == {}


def test_unread_fields_are_not_kept_and_key_order_is_the_senders():
    body = json.dumps({'kind': 'NodeList', 'metadata': {'continue': 't', 'selfLink': 'x'}, 'items': [
        {'metadata': {'uid': 'u', 'labels': {'b': '1', 'a': '2'}, 'name': 'w1'}, 'status': {'images': [{'names': ['x']}]}}]}).encode()
    for page in both(lambda: _fields.reader('nodes')(body)):
        assert page == {'kind': 'NodeList', 'metadata': {'continue': 't'},
                        'items': [{'metadata': {'labels': {'b': '1', 'a': '2'}, 'name': 'w1'}, 'status': {}}]}
        assert list(page['items'][0]['metadata']['labels']) == ['b', 'a']


def test_a_jmespath_filter_reads_whole_objects():
    body = b'{"kind": "ServiceList", "items": [{"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}]}'
    for whole in both(lambda: _fields.reader('services', whole=True)(body)):
        assert whole['items'][0]['spec']['selector'] == {'app': 'web'}
    assert 'selector' not in _fields.reader('services')(body)['items'][0]['spec']


def test_the_environment_variable_forces_the_standard_library():
    code = ('from ansible_collections.portico.k8s.plugins.module_utils import _fields; '
            'print(_fields.HAS_MSGSPEC, _fields.USE_MSGSPEC)')
    env = dict(os.environ, PORTICO_K8S_DECODER='json', PYTHONPATH=os.pathsep.join(sys.path))
    found = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.split() == ['True', 'False']


def test_two_declarations_of_one_field_must_agree():
    assert _fields.merged({'a': {'b': _fields.KEEP}}, {'a': {'c': _fields.KEEP}}) == {'a': {'b': 'keep', 'c': 'keep'}}
    with pytest.raises(ValueError, match='field a is declared'):
        _fields.merged({'a': {'b': _fields.KEEP}}, {'a': _fields.KEEP})


def test_names_that_are_not_text_leave_those_objects_out_and_the_model_is_made(tmp_path):
    node = {'kind': 'Node', 'metadata': {'name': 'w1'}, 'status': {
        'conditions': [{'type': 'Ready', 'status': 'True'}], 'addresses': [{'type': 'InternalIP', 'address': '192.0.2.1'}]}}
    local = {'kind': 'Service', 'metadata': {'name': 'web', 'namespace': 'shop'},
             'spec': {'type': 'NodePort', 'externalTrafficPolicy': 'Local', 'ports': [{'port': 80, 'protocol': 'TCP', 'nodePort': 30080}]}}
    odd_service = {'kind': 'Service', 'metadata': {'name': ['web'], 'namespace': ['shop']},
                   'spec': {'type': 'NodePort', 'externalTrafficPolicy': 'Local', 'ports': [{'port': 81, 'protocol': 'TCP', 'nodePort': 30081}]}}
    odd_slice = {'kind': 'EndpointSlice', 'metadata': {'name': 'web-1', 'namespace': ['shop'],
                                                       'labels': {'kubernetes.io/service-name': 'web'}},
                 'endpoints': [{'nodeName': 'w1'}]}
    odd_secret = {'kind': 'Secret', 'metadata': {'name': {'x': 1}, 'namespace': 'shop'}, 'type': 'kubernetes.io/tls'}
    path = tmp_path / 'snapshot.json'
    path.write_text(json.dumps({'kind': 'List', 'items': [node, local, odd_service, odd_slice, odd_secret]}))
    for found in both(lambda: _collect.collect_model({'snapshot': str(path), 'address_types': ['InternalIP']}.get)):
        assert [b['name'] for b in found['backends']] == ['shop.web.80']
        # the odd slice names no service: web has no ready endpoint on a node
        assert found['backends'][0]['nodes'] == []
        assert any(e['service'] == "['shop']/['web']" for e in found['excluded_services'])
