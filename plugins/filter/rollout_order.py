# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: rollout_order
short_description: The order in which the sync updates the load balancers, holders of floating addresses last
version_added: 0.3.0
description:
  - Returns C(order), the load balancers that hold no floating address first, then those not asked,
    then those that hold one; and C(serial), batches that update the holders alone and last (one
    host first, as the canary), or V(null) when no host holds an address.
  - C(playbooks/sync.yml) uses it when keepalived is managed (C(haproxy_sync_keepalived)), so that
    clients move to an updated host before the host they used is updated.
options:
  _input:
    description: C(hostvars); a host's C(_haproxy_sync_holds) fact (set by M(portico.k8s.floating_address_info)) says whether it holds one.
    type: dict
    required: true
  hosts:
    description: The load balancers of this run, in inventory order (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Decide the rollout order once
  ansible.builtin.set_fact:
    _haproxy_sync_rollout: "{{ hostvars | portico.k8s.rollout_order(ansible_play_hosts_all) }}"
  delegate_to: localhost
  delegate_facts: true
  run_once: true
'''

RETURN = r'''
_value:
  description: C(order) (a list of inventory names) and C(serial) (a list of batch sizes, or V(null)).
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.portico.k8s.plugins.module_utils._keepalived import rollout


def rollout_order(hostvars, hosts):
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('rollout_order: hosts must be a list of inventory names, not %r' % (hosts,))
    holding = {}
    for name in hosts:
        value = hostvars[name].get('_haproxy_sync_holds')
        holding[name] = value if isinstance(value, bool) else None
    order, serial = rollout(list(hosts), holding)
    return {'order': order, 'serial': serial}


class FilterModule(object):
    def filters(self):
        return {'rollout_order': rollout_order}
