#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: sync_preflight
short_description: Check which load balancers a sync updates, and the variables it was given
version_added: 0.3.0
description:
  - Runs on the controller only (an action plugin), before the cluster is read. The
    P(portico.k8s.haproxy_sync#role) role runs it first in its C(collect) step, and
    C(playbooks/sync.yml) runs it when a model is given.
  - Fails when there is no load balancer to update, that is when O(load_balancers) is not given and
    the inventory has no group C(loadbalancers) or it has no hosts, so that a run never records a
    drain state for nodes no load balancer serves.
  - The model is collected once, on the controller (C(localhost)). A collect option of the role (the
    options of its C(collect) entry point, such as C(haproxy_sync_namespaces)) that every load
    balancer sets alike in its host or group variables, and that the controller's inventory
    variables do not set, is listed in RV(from_load_balancers) for the role to take over. A collect
    option that the load balancers set differently, or that they set otherwise than the controller,
    fails the task with the names of the variables and hosts (and the values, except secret ones).
  - A C(haproxy_sync_*) variable that is no option of any entry point of the role (a misspelling,
    say) is named in a warning, with the closest known name.
  - The metrics frontend of each load balancer (C(haproxy_sync_metrics_address), C(_port), C(_users),
    C(_allow), set in its host or group variables) is checked before the cluster is read; an address that
    is a wildcard, the load balancer's C(haproxy_sync_bind_address) or in an address pool fails the task,
    as does a password that is not a crypt(3) hash. Their ports are returned in RV(metrics_ports).
author:
  - Portico maintainers (@portico-k8s)
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: Runs on the controller only; nothing runs on the host.
options:
  argument_specs:
    description:
      - The role's C(meta/argument_specs.yml), whose options are the known variables and whose
        C(collect) entry point lists the collect options.
    type: path
    required: true
  load_balancers:
    description:
      - The hosts the run updates. Unset, the hosts of the inventory group C(loadbalancers).
      - When the task runs for one of them (the role in the load balancers' own play), their
        variables are the ones the model is collected with; they must agree.
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: Check the load balancers and the variables given for them
  portico.k8s.sync_preflight:
    argument_specs: "{{ role_path }}/meta/argument_specs.yml"
  register: preflight
  run_once: true
'''

RETURN = r'''
load_balancers:
  description: The hosts the run updates.
  returned: success
  type: list
  elements: str
  sample: [lb1.example.com, lb2.example.com]
from_load_balancers:
  description:
    - The collect options that the load balancers set (alike) and the controller does not; the role
      sets them on the controller from the first load balancer's variables.
  returned: success
  type: list
  elements: str
  sample: [haproxy_sync_namespaces]
metrics_ports:
  description:
    - The C(haproxy_sync_metrics_port) of each load balancer that sets C(haproxy_sync_metrics_address), for
      the collect step to give to no Service (option O(portico.k8s.nodeport_info#module:metrics_ports)).
  returned: success
  type: list
  elements: int
  sample: [8404]
  version_added: 0.3.0
'''

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        argument_specs=dict(type='path', required=True),
        load_balancers=dict(type='list', elements='str'),
    ), supports_check_mode=True)
    module.fail_json(msg='portico.k8s.sync_preflight runs on the controller, as an action plugin; it has no module part')


if __name__ == '__main__':
    main()
