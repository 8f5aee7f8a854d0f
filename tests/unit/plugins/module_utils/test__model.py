"""The routing model: deterministic, factored, and nothing lost without a reason."""

import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _cluster, _model

# recorded responses of a real kube-apiserver, kept with the tests
FIXTURES = os.environ.get('PORTICO_K8S_FIXTURES', os.path.join(
    os.path.dirname(__file__), '..', '..', '..', 'data', 'kube-apiserver-1.36'))

hostile = st.sampled_from(['web', 'db', 'a\nb', 'x y', 'WEB', '#x', 'bind', '"q"', '', 'v' * 70, 'ns-1'])
names = st.one_of(st.from_regex(r'\A[a-z][a-z0-9]{0,5}\Z'), hostile)


@st.composite
def slim_nodes(draw):
    return {
        'name': draw(st.one_of(st.from_regex(r'\Aw[0-9]{1,2}\Z'), hostile)),
        'labels': {},
        'ready': draw(st.sampled_from(['True', 'True', 'False', 'Unknown', None])),
        'addresses': draw(st.lists(st.tuples(
            st.sampled_from(['InternalIP', 'ExternalIP', 'Hostname']),
            st.one_of(st.ip_addresses().map(str), hostile)).map(list), max_size=3)),
        'unschedulable': False, 'deleting': False, 'taints': [],
    }


@st.composite
def slim_services(draw):
    ports = draw(st.lists(st.fixed_dictionaries({
        'name': st.sampled_from(['', 'http', 'dns', 'Bad Name']),
        'protocol': st.sampled_from(['TCP', 'TCP', 'UDP', 'SCTP']),
        'port': st.one_of(st.integers(1, 30), st.integers(-1, 70000)),
        'node_port': st.one_of(st.none(), st.integers(30000, 30030), st.just(0)),
    }), max_size=3))
    return {
        'namespace': draw(names), 'name': draw(names),
        'created': draw(st.sampled_from(['2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z', ''])),
        'type': 'NodePort', 'ports': ports,
        'external_traffic_policy': 'Cluster', 'health_check_node_port': None,
    }


cluster = st.tuples(st.lists(slim_nodes(), max_size=6), st.lists(slim_services(), max_size=8))


@settings(max_examples=150)
@given(cluster, st.randoms())
def test_same_cluster_in_any_order_gives_the_same_model(state, rnd):
    nodes, services = state
    first = _model.build_model(nodes, services)
    nodes, services = list(nodes), list(services)
    rnd.shuffle(nodes)
    rnd.shuffle(services)
    assert json.dumps(_model.build_model(nodes, services), sort_keys=False) == json.dumps(first, sort_keys=False)


@settings(max_examples=150)
@given(cluster)
def test_every_service_port_is_routed_or_excluded_with_a_reason(state):
    nodes, services = state
    model = _model.build_model(nodes, services)
    routed = {(b['service'], b['service_port']) for b in model['backends']}
    excluded_ports = {(e['service'], e['port']) for e in model['excluded_services']}
    excluded_whole = {e['service'] for e in model['excluded_services'] if e['port'] is None}
    for service in services:
        service_id = '%s/%s' % (service['namespace'], service['name'])
        if service_id in excluded_whole:
            continue
        for port in service['ports']:
            label = '%s/%s' % (port['port'], port['protocol'])
            assert (service_id, port['port']) in routed or (service_id, label) in excluded_ports
    assert all(e['reason'] for e in model['excluded_services'] + model['excluded_nodes'])


@settings(max_examples=150)
@given(cluster)
def test_model_is_factored_and_frontend_ports_are_unique(state):
    nodes, services = state
    model = _model.build_model(nodes, services)
    ports = [f['port'] for f in model['frontends']]
    assert len(ports) == len(set(ports))
    for backend in model['backends']:
        assert backend['nodes'] == 'all'
    assert len({n['name'] for n in model['nodes']}) == len(model['nodes'])
    for node in model['nodes']:
        assert node['address'] and ' ' not in node['address']


def service(namespace, name, created, port, node_port, protocol='TCP'):
    return {'namespace': namespace, 'name': name, 'created': created, 'type': 'NodePort',
            'ports': [{'name': '', 'protocol': protocol, 'port': port, 'node_port': node_port}]}


def ready_node(name, *addresses):
    return {'name': name, 'ready': 'True', 'addresses': [list(a) for a in addresses]}


def test_the_older_service_keeps_a_contested_port_and_the_younger_is_reported():
    older = service('b', 'old', '2026-01-01T00:00:00Z', 80, 30001)
    younger = service('a', 'new', '2026-03-01T00:00:00Z', 80, 30002)
    model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [younger, older])
    assert [f['service'] for f in model['frontends']] == ['b/old']
    assert model['excluded_services'] == [{
        'service': 'a/new', 'port': '80/TCP',
        'reason': 'frontend port 80 is already taken by the older service b/old'}]


def test_node_port_mode_binds_the_node_port():
    model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))],
                               [service('a', 'web', '', 80, 30080)], {'frontend_port': 'node_port'})
    assert model['frontends'][0]['port'] == 30080


def test_udp_ports_are_excluded_never_silently():
    model = _model.build_model([], [service('dns', 'coredns', '', 53, 30053, 'UDP')])
    assert model['excluded_services'][0]['reason'] == 'UDP ports cannot be balanced by HAProxy'
    assert model['backends'] == []


def test_a_port_listed_twice_in_one_service_is_excluded_with_the_reason():
    # the API server refuses it; a hand-made snapshot may hold it, and HAProxy refuses two sections of one name
    twice = service('a', 'web', '', 80, 30080)
    twice['ports'].append(dict(twice['ports'][0], node_port=30081))
    for conflict in ('exclude', 'allocate'):
        model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [twice], {'port_conflict': conflict})
        assert [f['name'] for f in model['frontends']] == ['a.web.80']
        assert model['excluded_services'] == [{'service': 'a/web', 'port': '80/TCP',
                                               'reason': 'invalid: port 80/TCP is listed twice'}]


def test_ports_named_as_kubectl_and_helm_charts_name_them_are_served():
    # `kubectl create service nodeport x --tcp=8200:8080` names its port "8200-8080"; names up to
    # 63 characters are valid Service port names (only container ports keep the IANA rule)
    web = service('a', 'x', '', 8200, 30820)
    web['ports'][0]['name'] = '8200-8080'
    metrics = service('a', 'm', '', 9100, 30910)
    metrics['ports'][0]['name'] = 'http-metrics-api'
    model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [web, metrics])
    assert model['excluded_services'] == []
    assert sorted((b['name'], b['port_name']) for b in model['backends']) == [
        ('a.m.9100', 'http-metrics-api'), ('a.x.8200', '8200-8080')]


def test_a_port_named_with_digits_only_is_referred_to_by_its_number():
    svc = service('a', 'web', '', 80, 30080)
    svc['ports'][0]['name'] = '8080'
    svc['annotations'] = {'ports': '8080'}
    model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [svc])
    assert model['backends'] == []
    assert [w['reason'] for w in model['warnings']] == [
        'annotation names port 8080, which the service does not have (digits are a port number; '
        'its port named "8080" is port 80)']
    svc['annotations'] = {'ports': '80'}
    model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [svc])
    assert [b['name'] for b in model['backends']] == ['a.web.80']


def test_address_preference_and_ipv6_notation():
    node = ready_node('w1', ('Hostname', 'w1'), ('ExternalIP', '203.0.113.9'), ('InternalIP', 'fd00::22'))
    model = _model.build_model([node], [], {'address_types': ['InternalIP', 'ExternalIP']})
    assert model['nodes'] == [{'name': 'w1', 'address': '[fd00::22]'}]
    model = _model.build_model([node], [], {'address_types': ['ExternalIP']})
    assert model['nodes'] == [{'name': 'w1', 'address': '203.0.113.9'}]


@pytest.mark.parametrize('node,reason', [
    ({'name': 'w1', 'ready': 'False', 'addresses': [['InternalIP', '10.0.0.1']]},
     'not Ready (Ready condition is False)'),
    ({'name': 'w1', 'ready': 'Unknown', 'addresses': [['InternalIP', '10.0.0.1']]},
     'not Ready (Ready condition is Unknown)'),
    ({'name': 'w1', 'ready': None, 'addresses': [['InternalIP', '10.0.0.1']]},
     'not Ready (Ready condition is missing)'),
    ({'name': 'w1', 'ready': 'True', 'addresses': [['Hostname', 'w1']]},
     'no address of type InternalIP or ExternalIP'),
    ({'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1\nserver x']]},
     "no usable address: InternalIP address '10.0.0.1\\nserver x' is not an IP address"),
    ({'name': 'W1 #', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']]},
     "invalid: node name 'W1 #' is not a DNS-1123 subdomain"),
])
def test_each_node_exclusion_names_its_rule(node, reason):
    model = _model.build_model([node], [])
    assert model['excluded_nodes'][0]['reason'] == reason
    assert model['nodes'] == []


def test_model_of_a_real_api_servers_objects():
    nodes, services, slices, source, dummy = _cluster.read_snapshot(
        os.path.join(FIXTURES, 'cluster-list.json'), _cluster.ServiceFilter())
    model = _model.build_model(nodes, services, {}, source, slices)
    assert [n['name'] for n in model['nodes']] == ['worker-1', 'worker-2']
    assert model['excluded_nodes'] == [
        {'name': 'cp-1', 'reason': 'control-plane node (label node-role.kubernetes.io/control-plane); '
                                   'set include_control_plane to use it'},
        {'name': 'worker-3', 'reason': 'not Ready (Ready condition is False)'}]
    assert [(b['name'], b['node_port'], b['nodes'], b['check']) for b in model['backends']] == [
        ('dns.coredns-ext.53', 30054, 'all', {'type': 'tcp'}),
        ('guestbook.frontend.80', 30080, 'all', {'type': 'tcp'}),
        # Local policy: only the node with a ready endpoint, checked on kube-proxy's healthCheckNodePort
        ('monitoring.grafana.3000', 31300, ['worker-1'], {'type': 'http', 'port': 27071, 'path': '/healthz'})]
    assert model['excluded_services'] == [
        {'service': 'dns/coredns-ext', 'port': '53/UDP', 'reason': 'UDP ports cannot be balanced by HAProxy'}]


def test_snapshot_filters_apply_locally():
    path = os.path.join(FIXTURES, 'cluster-list.json')
    only = _cluster.ServiceFilter(namespaces=['monitoring'])
    assert [s['name'] for s in _cluster.read_snapshot(path, only)[1]] == ['grafana']
    jp = _cluster.ServiceFilter(expression="spec.type == 'LoadBalancer'")
    assert [s['name'] for s in _cluster.read_snapshot(path, jp)[1]] == ['grafana']


@pytest.mark.parametrize('items,held', [
    ([], 'it is an empty List'),
    ([{'kind': 'Pod', 'metadata': {'name': 'p1'}}, {'kind': 'Pod', 'metadata': {'name': 'p2'}},
      {'kind': 'ConfigMap'}, {'metadata': {}}], 'only 1 ConfigMap, 2 Pod, 1 without a kind'),
    ([{'kind': 'EndpointSlice'}], 'only 1 EndpointSlice'),
])
def test_a_list_without_nodes_and_services_is_not_a_cluster_snapshot(tmp_path, items, held):
    # an empty model, which a fresh load balancer would install, from a file that is no cluster
    path = tmp_path / 'pods.json'
    path.write_text(json.dumps({'apiVersion': 'v1', 'kind': 'List', 'items': items}))
    with pytest.raises(_cluster.KubeError) as raised:
        _cluster.read_snapshot(str(path), _cluster.ServiceFilter())
    assert str(raised.value) == (
        'snapshot %s holds no Node and no Service (%s), so it is not a snapshot of a cluster; make it with '
        '"kubectl get nodes,services,endpointslices -A -o json"; nothing was changed' % (path, held))


def test_a_snapshot_of_nodes_only_or_services_only_is_read(tmp_path):
    path = tmp_path / 'nodes.json'
    path.write_text(json.dumps({'kind': 'List', 'items': [{'kind': 'Node', 'metadata': {'name': 'w1'}}]}))
    assert [n['name'] for n in _cluster.read_snapshot(str(path), _cluster.ServiceFilter())[0]] == ['w1']


def test_a_name_listed_twice_excludes_every_copy_whatever_the_order():
    first = ready_node('w1', ('InternalIP', '10.0.0.1'))
    second = ready_node('w1', ('InternalIP', '10.0.0.2'))
    web = service('a', 'web', '', 80, 30080)
    other = service('a', 'web', '', 81, 30081)
    for nodes, services in (([first, second], [web, other]), ([second, first], [other, web])):
        model = _model.build_model(nodes, services)
        assert model['nodes'] == [] and model['backends'] == []
        assert {n['reason'] for n in model['excluded_nodes']} == {'duplicate node name'}
        assert {e['reason'] for e in model['excluded_services']} == {'listed more than once'}


@pytest.mark.parametrize('created', [1700000000, 17.5, {'a': 1}, ['2026'], True, None])
def test_a_creation_timestamp_that_is_not_text_counts_as_missing(created):
    def obj(name, when, port, node_port):
        return {'kind': 'Service', 'metadata': {'namespace': 'a', 'name': name, 'creationTimestamp': when},
                'spec': {'type': 'NodePort', 'ports': [{'port': port, 'nodePort': node_port, 'protocol': 'TCP'}]}}
    odd = _cluster.slim_service(obj('odd', created, 80, 30001))
    assert odd['created'] == ''
    dated = _cluster.slim_service(obj('dated', '2026-01-01T00:00:00Z', 80, 30002))
    # a missing time is the youngest: the dated service keeps the contested port
    model = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [odd, dated])
    assert [f['service'] for f in model['frontends']] == ['a/dated']
    assert model['excluded_services'][0]['service'] == 'a/odd'
    # a slim record made elsewhere (a model passed in) is read the same way
    raw = dict(odd, created=created)
    again = _model.build_model([ready_node('w1', ('InternalIP', '10.0.0.1'))], [raw, dated])
    assert [f['service'] for f in again['frontends']] == ['a/dated']
