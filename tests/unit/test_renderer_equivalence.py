"""The Python renderer writes the same file as the role's Jinja template did (kept for the switch).

Demo snapshot, the test API server's sample cluster, a large synthetic cluster, and every model the
injection property tests generate: byte for byte, base template included.
"""

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _cluster, _haproxy, _model
from bench import cluster as synthetic
from tests.fakeapi import objects
from tests.support.render import BASE, REPO_TEMPLATES, render
from tests.unit import test_injection


def both(model, bind_address='127.0.0.1', cert_dir='/etc/haproxy/portico-certs'):
    old = render(model, bind_address=bind_address, cert_dir=cert_dir)
    new = BASE.strip() + '\n\n' + _haproxy.render(model, bind_address, cert_dir)
    return old, new


def model_of(items, **options):
    nodes = [_cluster.slim_node(o) for o in items if o.get('kind') == 'Node']
    services = [s for s in (_cluster.ServiceFilter()(o) for o in items if o.get('kind') == 'Service') if s]
    slices = [_cluster.slim_endpointslice(o) for o in items if o.get('kind') == 'EndpointSlice']
    return _model.build_model(nodes, services, options, {'kind': 'snapshot', 'snapshot': 'c.json'}, slices)


def test_the_demo_and_the_sample_cluster():
    demo = json.loads((REPO_TEMPLATES.parents[2] / 'examples' / 'demo' / 'cluster.json').read_text())
    for items in (demo['items'], objects.sample_cluster()):
        for options in ({}, {'include_control_plane': True, 'backend_subset_size': 1}):
            old, new = both(model_of(items, **options))
            assert old == new


def test_a_large_synthetic_cluster():
    node_objs, service_objs = synthetic.generate(300, 2000, ready_nodes=40)
    for options in ({'port_conflict': 'allocate'}, {'backend_subset_size': 5, 'check_kube_proxy': True}):
        model = model_of(node_objs + service_objs, **options)
        model['draining_nodes'] = [{'name': 'gone-1', 'address': '10.9.9.9', 'since': 1}]
        old, new = both(model, bind_address='*')
        assert old == new and new.count('\n    server ') > 1000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(test_injection.cluster(), st.sampled_from(['exclude', 'allocate']))
def test_every_generated_model(state, port_conflict):
    raw_nodes, raw_services = state
    model = model_of(raw_nodes + raw_services, include_control_plane=True, port_conflict=port_conflict)
    old, new = both(model)
    assert old == new


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(test_injection.tls_services(), st.sampled_from(['exclude', 'allocate']))
def test_every_generated_tls_model(services, port_conflict):
    nodes = [{'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']], 'labels': {}, 'taints': [],
              'unschedulable': False, 'deleting': False}]
    secrets = {}
    for key in _cluster.wanted_secrets(services):
        secrets[key] = dict(test_injection.CERTIFICATE[1], secret='%s/%s' % key, file='%s_%s.0123456789ab.pem' % key)
    model = _model.build_model(nodes, services, {'port_conflict': port_conflict}, {'kind': 'api', 'server': 'https://x'},
                               None, secrets)
    old, new = both(model, cert_dir='/tmp/certs')
    assert old == new
