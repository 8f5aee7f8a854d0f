# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: drain_record
short_description: The drain state to remember once the load balancers serve a routing model
version_added: 0.3.0
description:
  - Returns the text the P(portico.k8s.haproxy_sync#role) role writes to C(haproxy_sync_drain_state_file)
    after every load balancer took the model, and M(portico.k8s.nodeport_info) reads back
    (O(portico.k8s.nodeport_info#module:drain_state_file)) so that a node that leaves drains first.
  - It holds which cluster the model is of (its source, not when it was read, so an unchanged run
    writes the same text), the nodes served and the nodes draining; JSON with sorted keys.
options:
  _input:
    description:
      - The routing model, RV(portico.k8s.nodeport_info#module:model) (a dict), or its JSON text,
        RV(portico.k8s.nodeport_info#module:model_json) (C(haproxy_sync_model_json)).
    type: raw
    required: true
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Remember the nodes the load balancers serve
  ansible.builtin.copy:
    content: "{{ haproxy_sync_model_json | portico.k8s.drain_record }}"
    dest: /var/lib/portico/drain-state.json
    mode: "0600"
'''

RETURN = r'''
_value:
  description: The drain state as JSON text, ending in a newline.
  type: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.portico.k8s.plugins.module_utils._drain import record
from ansible_collections.portico.k8s.plugins.module_utils._summary import read_model


def drain_record(model):
    try:
        return record(read_model(model, 'drain_record: the model'))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {'drain_record': drain_record}
