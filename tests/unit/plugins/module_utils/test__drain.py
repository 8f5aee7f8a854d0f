"""Graceful removal across runs: a node that leaves drains first, then goes."""

from ansible_collections.portico.k8s.plugins.module_utils import _model
from ansible_collections.portico.k8s.plugins.module_utils._drain import draining_nodes


def node(name, address):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', address]]}


SERVICE = {'namespace': 'a', 'name': 'web', 'created': '', 'type': 'NodePort',
           'ports': [{'name': '', 'protocol': 'TCP', 'port': 80, 'node_port': 30080}]}


def run(nodes, state, now, drain_seconds=0):
    model = _model.build_model(nodes, [SERVICE], {'drain_state': state, 'now': now, 'drain_seconds': drain_seconds})
    return model, {'nodes': model['nodes'], 'draining_nodes': model['draining_nodes']}


def test_a_node_that_leaves_drains_for_one_run_then_goes():
    both = [node('w1', '10.0.0.1'), node('w2', '10.0.0.2')]
    model, state = run(both, None, now=100)
    assert model['draining_nodes'] == []
    model, state = run(both[:1], state, now=160)
    assert model['draining_nodes'] == [{'name': 'w2', 'address': '10.0.0.2', 'since': 160}]
    model, state = run(both[:1], state, now=220)
    assert model['draining_nodes'] == []


def test_drain_seconds_keeps_it_longer():
    both = [node('w1', '10.0.0.1'), node('w2', '10.0.0.2')]
    dummy, state = run(both, None, now=0)
    dummy, state = run(both[:1], state, now=10, drain_seconds=300)
    model, state = run(both[:1], state, now=200, drain_seconds=300)
    assert [n['since'] for n in model['draining_nodes']] == [10]
    model, state = run(both[:1], state, now=310, drain_seconds=300)
    assert model['draining_nodes'] == []


def test_a_node_that_comes_back_stops_draining():
    both = [node('w1', '10.0.0.1'), node('w2', '10.0.0.2')]
    dummy, state = run(both, None, now=0)
    dummy, state = run(both[:1], state, now=10)
    model, state = run(both, state, now=20)
    assert model['draining_nodes'] == [] and len(model['nodes']) == 2


def test_stored_entries_go_through_the_allow_list():
    state = {'nodes': [{'name': 'ok', 'address': '[fd00::1]'}, {'name': 'bad\nname', 'address': '10.0.0.9'},
                       {'name': 'w9', 'address': '10.0.0.9 backup'}, 'junk'],
             'draining_nodes': 'junk'}
    assert draining_nodes(state, [], now=5) == [{'name': 'ok', 'address': '[fd00::1]', 'since': 5}]
    assert draining_nodes('junk', [], now=5) == []
