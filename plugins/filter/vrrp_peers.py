# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: vrrp_peers
short_description: The VRRP addresses of the other load balancers
version_added: 0.3.0
description:
  - Returns the address each other host of O(hosts) sends its VRRP adverts from, for keepalived's
    unicast peers; the P(portico.k8s.haproxy_sync#role) role's default of C(haproxy_sync_vrrp_peers).
  - A host's address is its C(haproxy_sync_vrrp_address), else its C(ansible_host), else its
    inventory name. It must be an IP address; the host step refuses a name, naming it.
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The load balancers that share the floating addresses (C(groups['loadbalancers'])).
    type: list
    elements: str
    required: true
  me:
    description: This host (C(inventory_hostname)), left out.
    type: str
    required: true
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Show the peers of this load balancer
  ansible.builtin.debug:
    msg: "{{ hostvars | portico.k8s.vrrp_peers(groups['loadbalancers'], inventory_hostname) }}"
'''

RETURN = r'''
_value:
  description: The other hosts' VRRP addresses, in the order of O(hosts).
  type: list
  elements: str
'''

import ipaddress

from ansible.errors import AnsibleFilterError


def vrrp_address(name, variables):
    """The address a load balancer sends VRRP adverts from: its haproxy_sync_vrrp_address, ansible_host or name.
    A name that is no IP address is returned as it is: the host step refuses it, naming it, when keepalived is on."""
    for key in ('haproxy_sync_vrrp_address', 'ansible_host'):
        value = variables.get(key)
        if value not in (None, ''):
            break
    else:
        value = name
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return str(value)


def vrrp_peers(hostvars, hosts, me):
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('vrrp_peers: hosts must be a list of inventory names, not %r' % (hosts,))
    return [vrrp_address(name, hostvars[name]) for name in hosts if name != me]


class FilterModule(object):
    def filters(self):
        return {'vrrp_peers': vrrp_peers}
