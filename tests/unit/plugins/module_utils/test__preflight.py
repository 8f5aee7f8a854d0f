"""Before a sync reads the cluster: its load balancers, and the variables given for them."""

from pathlib import Path

import pytest
import yaml

from ansible_collections.portico.k8s.plugins.module_utils._preflight import (
    PreflightError,
    Specs,
    collect_options,
    load_balancers,
    unknown_variables,
)

REPO = Path(__file__).resolve().parents[4]
SPECS = Specs(yaml.safe_load((REPO / 'roles' / 'haproxy_sync' / 'meta' / 'argument_specs.yml').read_text()))


def test_the_specs_know_every_variable_the_role_sets_by_default_and_which_are_secret():
    defaults = yaml.safe_load((REPO / 'roles' / 'haproxy_sync' / 'defaults' / 'main.yml').read_text())
    assert set(defaults) <= SPECS.known
    assert {'haproxy_sync_namespaces', 'haproxy_sync_frontend_port', 'haproxy_sync_snapshot', 'haproxy_sync_host',
            'haproxy_sync_drain_state_file', 'haproxy_sync_drain_seconds'} <= set(SPECS.collect)
    assert 'haproxy_sync_config_path' not in SPECS.collect and 'haproxy_sync_config_path' in SPECS.known
    assert {'haproxy_sync_api_key', 'haproxy_sync_kubeconfig', 'haproxy_sync_proxy_headers'} <= SPECS.secret
    with pytest.raises(PreflightError, match='not those of the portico.k8s.haproxy_sync role'):
        Specs({'argument_specs': {'main': {}}})


def test_no_group_loadbalancers_is_an_error_that_names_the_fix():
    with pytest.raises(PreflightError) as raised:
        load_balancers(None, {'all': ['lb1'], 'ungrouped': [], 'proxies': ['lb1']})
    assert str(raised.value) == (
        'the inventory has no group loadbalancers (its groups: proxies): this run would update no load balancer, and '
        'would still record the nodes it read as served (the drain state). Put the HAProxy hosts in a group named '
        'loadbalancers (an inventory with "children: {loadbalancers: {hosts: ...}}"), or give the inventory that has '
        'them (-i); nothing was changed')
    with pytest.raises(PreflightError, match='^the group loadbalancers of the inventory has no hosts: '):
        load_balancers(None, {'all': [], 'loadbalancers': []})
    assert load_balancers(None, {'loadbalancers': ['lb1', 'lb2']}) == ['lb1', 'lb2']
    # the role in the load balancers' own play: its hosts, whatever the groups
    assert load_balancers(['lb9'], {}) == ['lb9']


def test_collect_options_of_the_load_balancers_are_taken_when_they_agree_and_the_controller_sets_none():
    lbs = {'lb1': {'haproxy_sync_namespaces': ['shop'], 'haproxy_sync_frontend_port': 'node_port'},
           'lb2': {'haproxy_sync_namespaces': ['shop'], 'haproxy_sync_frontend_port': 'node_port'}}
    assert collect_options(SPECS, 'localhost', {}, lbs) == ['haproxy_sync_frontend_port', 'haproxy_sync_namespaces']
    # set alike on the controller (all: vars:, -e): nothing to take over
    assert collect_options(SPECS, 'localhost', {'haproxy_sync_namespaces': ['shop']}, lbs) == \
        ['haproxy_sync_frontend_port']
    # the role in the load balancers' play collects with their own variables
    assert collect_options(SPECS, None, {}, lbs) == []
    # options that are not collect options are the load balancers' own business
    own = {'lb1': {'haproxy_sync_config_path': '/a'}, 'lb2': {'haproxy_sync_config_path': '/b'}}
    assert collect_options(SPECS, 'localhost', {}, own) == []
    # whether the controller keeps a dict of the model is its own setting: never compared or taken over
    assert 'haproxy_sync_model_as_dict' in SPECS.known and 'haproxy_sync_model_as_dict' not in SPECS.collect
    mixed = {'lb1': {'haproxy_sync_model_as_dict': False}, 'lb2': {'haproxy_sync_model_as_dict': True}}
    assert collect_options(SPECS, 'localhost', {'haproxy_sync_model_as_dict': True}, mixed) == []


def test_load_balancers_that_disagree_or_a_controller_that_says_otherwise_stop_the_run():
    with pytest.raises(PreflightError) as raised:
        collect_options(SPECS, 'localhost', {}, {'lb1': {'haproxy_sync_namespaces': ['shop']},
                                                 'lb2': {'haproxy_sync_namespaces': ['web']}, 'lb3': {}})
    assert str(raised.value) == (
        'the model is collected once, on the controller, for every load balancer, so each collect option has one '
        'value: haproxy_sync_namespaces differs between the load balancers (lb1: ["shop"]; lb2: ["web"]; lb3: unset). '
        'Set each once: in the inventory\'s "all" variables, in the variables of the group loadbalancers (all its '
        'hosts alike), or as an extra variable (-e); nothing was changed')
    with pytest.raises(PreflightError, match='haproxy_sync_frontend_port is "node_port" on the load balancers but '
                                             '"service_port" on localhost, where the model is collected'):
        collect_options(SPECS, 'localhost', {'haproxy_sync_frontend_port': 'service_port'},
                        {'lb1': {'haproxy_sync_frontend_port': 'node_port'}})
    # the role in their own play: they must agree as well (it would collect with the first one's)
    with pytest.raises(PreflightError, match='haproxy_sync_snapshot differs between the load balancers'):
        collect_options(SPECS, None, {}, {'lb1': {'haproxy_sync_snapshot': 'a.json'}, 'lb2': {}})


def test_secret_values_are_never_shown():
    with pytest.raises(PreflightError) as raised:
        collect_options(SPECS, 'localhost', {'haproxy_sync_api_key': 'token-1'},
                        {'lb1': {'haproxy_sync_api_key': 'token-2', 'haproxy_sync_kubeconfig': {'users': 'x'}},
                         'lb2': {'haproxy_sync_api_key': 'token-2'}})
    message = str(raised.value)
    assert 'token' not in message and 'users' not in message
    assert 'haproxy_sync_api_key is a value not shown on the load balancers but a value not shown on localhost' \
        in message
    assert 'haproxy_sync_kubeconfig differs between the load balancers (lb1: a value not shown; lb2: unset)' in message


def test_unknown_haproxy_sync_variables_are_named_with_the_closest_known_one():
    seen = {'localhost': ['haproxy_sync_namespace', 'haproxy_sync_model', 'ansible_connection', 'other_var'],
            'lb1': ['haproxy_sync_namespace', 'haproxy_sync_bind_adress', 'haproxy_sync_config_path'],
            'lb2': ['haproxy_sync_zzz_qqq', 'haproxy_sync_model_json']}
    assert unknown_variables(SPECS, seen) == [
        'haproxy_sync_bind_adress (set for lb1) is not a variable of the portico.k8s.haproxy_sync role, so it is '
        'ignored (did you mean haproxy_sync_bind_address?); "ansible-doc -t role portico.k8s.haproxy_sync" lists the '
        'variables',
        'haproxy_sync_namespace (set for lb1, localhost) is not a variable of the portico.k8s.haproxy_sync role, so it '
        'is ignored (did you mean haproxy_sync_namespaces?); "ansible-doc -t role portico.k8s.haproxy_sync" lists the '
        'variables',
        'haproxy_sync_zzz_qqq (set for lb2) is not a variable of the portico.k8s.haproxy_sync role, so it is ignored; '
        '"ansible-doc -t role portico.k8s.haproxy_sync" lists the variables']
    many = dict(('lb%d' % i, ['haproxy_sync_x']) for i in range(8))
    assert unknown_variables(SPECS, many)[0].startswith('haproxy_sync_x (set for lb0, lb1, lb2, lb3, lb4 and 3 more)')
