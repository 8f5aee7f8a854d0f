"""The filters that read the model's JSON text on the controller: what the collect step prints and
the drain state the remember step writes, the same as the Jinja expressions they replace."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

from ansible_collections.portico.k8s.plugins.filter.drain_record import drain_record
from ansible_collections.portico.k8s.plugins.filter.sync_summary import sync_summary
from ansible_collections.portico.k8s.plugins.module_utils import _drain, _model
from tests.unit.plugins.module_utils.test__model import cluster

# The expressions the role's tasks held before (collect.yml's summary, remember.yml's content).
OLD_SUMMARY = {
    'load_balancers': "{{ _haproxy_sync_preflight.msg }}",
    'exposed': "{{ _fe | map(attribute='service') | zip(_fe | map(attribute='port')) | map('join', ' on port ') | list }}",
    'excluded_services': "{{ _ex | map(attribute='service') | zip(_ex | map(attribute='port') | map('default', 'all ports', true))"
                         " | map('join', ' ') | zip(_ex | map(attribute='reason')) | map('join', ': ') | list }}",
    'warnings': "{{ _wa | map(attribute='service') | zip(_wa | map(attribute='port') | map('default', 'all ports', true))"
                " | map('join', ' ') | zip(_wa | map(attribute='reason')) | map('join', ': ') | list }}",
    'nodes_in': "{{ haproxy_sync_model.nodes | map(attribute='name') | list }}",
    'nodes_draining': "{{ haproxy_sync_model.draining_nodes | map(attribute='name') | list }}",
    'nodes_out': "{{ _nx | map(attribute='name') | zip(_nx | map(attribute='reason')) | map('join', ': ') | list }}",
    'certificates': "{{ _tls | map(attribute='secret') | zip(_tls | map(attribute='not_after')) | map('join', ' valid until ') | list }}",
    'addresses': "{{ _lb | selectattr('address') | map(attribute='service') | zip(_lb | selectattr('address') | map(attribute='address'))"
                 " | map('join', ' at ') | list }}",
}
OLD_SUMMARY_VARS = {
    '_fe': "{{ haproxy_sync_model.frontends }}",
    '_ex': "{{ haproxy_sync_model.excluded_services }}",
    '_wa': "{{ haproxy_sync_model.warnings | default([]) }}",
    '_nx': "{{ haproxy_sync_model.excluded_nodes }}",
    '_tls': "{{ haproxy_sync_model.certificates | default([]) }}",
    '_lb': "{{ haproxy_sync_model.load_balancers | default([]) }}",
}
OLD_DRAIN = ("{{ {'source': haproxy_sync_model.source | default({}) | dict2items"
             " | selectattr('key', 'in', ['kind', 'server', 'snapshot']) | items2dict, 'nodes': haproxy_sync_model.nodes,"
             " 'draining_nodes': haproxy_sync_model.draining_nodes | default([])} | to_nice_json }}\n")

PREFLIGHT = '2 load balancers: lb1, lb2'


@pytest.fixture(scope='module')
def templar():
    init_plugin_loader([])
    return Templar(loader=DataLoader())


def old_summary(templar, model):
    variables = {'haproxy_sync_model': model, '_haproxy_sync_preflight': {'msg': PREFLIGHT}}
    variables.update(dict((k, trust_as_template(v)) for k, v in OLD_SUMMARY_VARS.items()))
    templar = templar.copy_with_new_env(available_variables=variables)
    return dict((key, templar.template(trust_as_template(expression))) for key, expression in OLD_SUMMARY.items())


def old_drain(templar, model):
    templar = templar.copy_with_new_env(available_variables={'haproxy_sync_model': model})
    return templar.template(trust_as_template(OLD_DRAIN))


MODEL = {
    'source': {'kind': 'api', 'server': 'https://k8s.example:6443', 'resource_version': '42', 'read_at': 1.5},
    'nodes': [{'name': 'w1', 'address': '192.0.2.1'}, {'name': 'w2', 'address': '192.0.2.2'}],
    'draining_nodes': [{'name': 'w3', 'address': '192.0.2.3', 'since': 100}],
    'excluded_nodes': [{'name': 'cp', 'reason': 'control plane'}],
    'frontends': [{'service': 'a/web', 'port': 80}, {'service': 'a/x, b/y', 'port': 443}],
    'backends': [],
    'excluded_services': [{'service': 'a/dns', 'port': '53/UDP', 'reason': 'UDP ports cannot be balanced by HAProxy'},
                          {'service': 'a/bad', 'port': None, 'reason': 'invalid: annotation'}],
    'warnings': [{'service': 'a/web', 'port': '', 'reason': 'annotation ignored'}],
    'certificates': [{'secret': 'a/tls', 'not_after': '2027-01-01T00:00:00Z', 'file': 'x.pem'},
                     {'secret': 'b/tls', 'not_after': None, 'file': 'y.pem'}],
    'load_balancers': [{'service': 'a/lb', 'address': '192.0.2.50'}, {'service': 'a/none', 'address': None,
                                                                      'reason': 'no pool'}],
}


def test_the_summary_is_what_the_role_printed(templar):
    assert sync_summary(MODEL, load_balancers=PREFLIGHT) == old_summary(templar, MODEL)
    assert sync_summary(json.dumps(MODEL), load_balancers=PREFLIGHT) == old_summary(templar, MODEL)
    assert sync_summary(MODEL)['addresses'] == ['a/lb at 192.0.2.50']
    assert 'load_balancers' not in sync_summary(MODEL)


def test_the_drain_record_is_the_file_the_role_wrote(templar):
    text = drain_record(json.dumps(MODEL))
    assert text == old_drain(templar, MODEL) == drain_record(MODEL)
    state = json.loads(text)
    # which cluster, not when it was read: an unchanged run writes the same text
    assert state['source'] == {'kind': 'api', 'server': 'https://k8s.example:6443'}
    assert _drain.check_state(state) == state
    assert _drain.state_for(state, MODEL['source']) == (state, None)


def test_a_model_given_without_source_or_draining_nodes_is_remembered_as_before(templar):
    model = {'nodes': [{'name': 'w1', 'address': '192.0.2.1'}], 'frontends': [], 'backends': []}
    assert drain_record(model) == old_drain(templar, model)
    assert json.loads(drain_record(model)) == {'source': {}, 'nodes': model['nodes'], 'draining_nodes': []}


@settings(max_examples=60, deadline=None)
@given(cluster, st.integers(0, 3))
def test_generated_models_read_the_same_through_the_filters(templar, state, drained):
    nodes, services = state
    previous = {'nodes': [{'name': 'gone%d' % i, 'address': '192.0.2.%d' % (100 + i)} for i in range(drained)]}
    model = _model.build_model(nodes, services, {'drain_state': previous, 'now': 50},
                               source={'kind': 'snapshot', 'snapshot': '/srv/cluster.json'})
    text = json.dumps(model)
    assert sync_summary(text, load_balancers=PREFLIGHT) == old_summary(templar, model)
    assert drain_record(text) == old_drain(templar, model)


@pytest.mark.parametrize('value, message', [
    ('{"nodes": [', 'sync_summary: the model is text but not JSON'),
    ('[]', 'sync_summary: the model must be the model of portico.k8s.nodeport_info .* not list'),
    (None, 'not NoneType'),
    ({'nodes': [], 'source': {}}, 'is not a model of portico.k8s.nodeport_info: it has no frontends, backends'),
])
def test_what_is_not_a_model_is_named(value, message):
    with pytest.raises(AnsibleFilterError, match=message):
        sync_summary(value)
    with pytest.raises(AnsibleFilterError, match=message.replace('sync_summary', 'drain_record')):
        drain_record(value)
