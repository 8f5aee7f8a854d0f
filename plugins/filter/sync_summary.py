# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: sync_summary
short_description: What a routing model serves, in lines for the operator
version_added: 0.3.0
description:
  - Returns the lists the P(portico.k8s.haproxy_sync#role) role prints after collecting a model
    (C(Collect | summary of what the load balancers will serve)), one line per item.
  - Reads the model from its JSON text once, in Python, so a large model is parsed once and not
    for every reference in a template.
options:
  _input:
    description:
      - The routing model, RV(portico.k8s.nodeport_info#module:model) (a dict), or its JSON text,
        RV(portico.k8s.nodeport_info#module:model_json) (C(haproxy_sync_model_json)).
    type: raw
    required: true
  load_balancers:
    description: Put first, as C(load_balancers), when given (the role passes which load balancers it checked).
    type: raw
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Show what the load balancers will serve
  ansible.builtin.debug:
    msg: "{{ haproxy_sync_model_json | portico.k8s.sync_summary }}"
'''

RETURN = r'''
_value:
  description:
    - "C(exposed): C(<service> on port <port>) for each frontend."
    - "C(excluded_services) and C(warnings): C(<service> <port, or all ports>: <reason>)."
    - "C(nodes_in) and C(nodes_draining): node names; C(nodes_out): C(<node>: <reason>)."
    - "C(certificates): C(<secret> valid until <date>); C(addresses): C(<service> at <address>)."
    - Each is a list of text; C(load_balancers) comes first when given.
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.portico.k8s.plugins.module_utils._summary import read_model, summary


def sync_summary(model, load_balancers=None):
    try:
        return summary(read_model(model, 'sync_summary: the model'), load_balancers)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {'sync_summary': sync_summary}
