"""The filters that feed keepalived and the rollout: the peers' VRRP addresses, and the rollout order."""

import json

import pytest

from ansible_collections.portico.k8s.plugins.filter.rollout_order import rollout_order
from ansible_collections.portico.k8s.plugins.filter.vrrp_peers import vrrp_peers
from ansible_collections.portico.k8s.plugins.modules.floating_address_info import local_addresses
from ansible.errors import AnsibleFilterError


def test_peers_are_the_other_hosts_vrrp_addresses_in_group_order():
    hostvars = {'lb1': {'ansible_host': '192.0.2.11'},
                'lb2': {'ansible_host': 'lb2.example', 'haproxy_sync_vrrp_address': '192.0.2.12'},
                '192.0.2.13': {},
                'lb4': {'ansible_host': 'lb4.example'}}
    peers = vrrp_peers(hostvars, ['lb1', 'lb2', '192.0.2.13', 'lb4'], 'lb1')
    assert peers == ['192.0.2.12', '192.0.2.13', 'lb4.example']
    # the host step refuses a name that is no address, naming it
    assert vrrp_peers(hostvars, ['lb1', 'lb2'], 'lb2') == ['192.0.2.11']
    with pytest.raises(AnsibleFilterError, match='list of inventory names'):
        vrrp_peers(hostvars, 'lb1', 'lb2')


def test_rollout_order_reads_the_holds_facts():
    hostvars = {'a': {'_haproxy_sync_holds': True}, 'b': {'_haproxy_sync_holds': False}, 'c': {},
                'd': {'_haproxy_sync_holds': 'yes'}}
    assert rollout_order(hostvars, ['a', 'b', 'c', 'd']) == {'order': ['b', 'c', 'd', 'a'], 'serial': [1, 2, 1]}
    assert rollout_order(hostvars, ['b', 'c']) == {'order': ['b', 'c'], 'serial': None}


def test_local_addresses_of_ip_json_output():
    answer = json.dumps([{'ifname': 'lo', 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8}]},
                         {'ifname': 'eth0', 'addr_info': [{'local': '192.0.2.11', 'prefixlen': 24},
                                                          {'local': '2001:db8::11', 'prefixlen': 64}, {}]},
                         {'ifname': 'dummy0'}])
    assert local_addresses(answer) == ['127.0.0.1/8', '192.0.2.11/24', '2001:db8::11/64']
