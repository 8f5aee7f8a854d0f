"""Traffic policy and subsetting: Local services reach only nodes with ready endpoints;
rendezvous subsets are spread evenly and move as little as possible."""

import collections

from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _cluster, _model, _traffic
from tests.fakeapi import objects


def ready(name, address):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', address]]}


def local_service(name, hcnp=None, svc_type='LoadBalancer'):
    return {'namespace': 'shop', 'name': name, 'created': '', 'type': svc_type,
            'ports': [{'name': 'http', 'protocol': 'TCP', 'port': 80, 'node_port': 30080}],
            'external_traffic_policy': 'Local', 'health_check_node_port': hcnp}


NODES = [ready('w1', '10.0.0.1'), ready('w2', '10.0.0.2'), ready('w3', '10.0.0.3')]


def test_local_policy_routes_only_to_nodes_with_a_ready_endpoint():
    obj = objects.endpointslice('web', 'shop', endpoints=[
        objects.endpoint(['10.244.1.5'], node_name='w1'),
        objects.endpoint(['10.244.3.5'], node_name='w3', ready=False),
        objects.endpoint(['10.244.9.5'], node_name='gone')])
    slices = [_cluster.slim_endpointslice(obj)]
    model = _model.build_model(NODES, [local_service('web', hcnp=32000)], {}, None, slices)
    backend = model['backends'][0]
    assert backend['nodes'] == ['w1']
    assert backend['check'] == {'type': 'http', 'port': 32000, 'path': '/healthz'}


def test_local_policy_without_endpoints_has_an_empty_backend():
    model = _model.build_model(NODES, [local_service('web', svc_type='NodePort')], {}, None, [])
    assert model['backends'][0]['nodes'] == []
    assert model['backends'][0]['check'] == {'type': 'tcp'}
    assert model['summary']['backends_without_nodes'] == 1


def test_kube_proxy_check_for_cluster_policy():
    service = dict(local_service('web'), external_traffic_policy='Cluster')
    model = _model.build_model(NODES, [service], {'check_kube_proxy': True})
    assert model['backends'][0]['check'] == {'type': 'http', 'port': 10256, 'path': '/healthz'}
    assert model['backends'][0]['nodes'] == 'all'


names = st.lists(st.from_regex(r'\An[0-9]{1,3}\Z'), min_size=2, max_size=40, unique=True)


@settings(max_examples=100)
@given(names, st.integers(1, 6), st.data())
def test_removing_a_node_changes_only_the_subsets_that_held_it(node_names, size, data):
    backends = ['ns.svc%d.80' % i for i in range(30)]
    gone = data.draw(st.sampled_from(node_names))
    before = _traffic.Subsetter(size, node_names)
    rest = [n for n in node_names if n != gone]
    after = _traffic.Subsetter(size, rest)
    for backend in backends:
        old = before.pick(backend, sorted(node_names))
        new = after.pick(backend, sorted(rest))
        assert len(old) == min(size, len(node_names))
        if gone not in old:
            assert new == old
        else:
            assert set(old) - {gone} <= set(new)


def test_subsets_spread_evenly_over_the_nodes():
    node_names = ['node-%03d' % i for i in range(100)]
    subsetter = _traffic.Subsetter(3, node_names)
    load = collections.Counter()
    for i in range(3000):
        load.update(subsetter.pick('ns.service-%d.80' % i, node_names))
    # 9000 picks over 100 nodes: 90 each on average
    assert min(load.values()) > 55 and max(load.values()) < 125


def test_subset_model_lists_names_and_keeps_all_when_small():
    service = dict(local_service('web'), external_traffic_policy='Cluster')
    assert _model.build_model(NODES, [service], {'backend_subset_size': 2})['backends'][0]['nodes'] != 'all'
    assert _model.build_model(NODES, [service], {'backend_subset_size': 5})['backends'][0]['nodes'] == 'all'
