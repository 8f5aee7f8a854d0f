# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: nodeports
short_description: The routing model of a cluster's NodePort services, for templates and ad-hoc use
version_added: 0.1.0
description:
  - Returns the same routing model as the M(portico.k8s.nodeport_info) module, computed by the
    same code, from the Kubernetes API or a snapshot file.
  - Runs on the controller. Takes no terms; the options choose the cluster, the services and
    the node addresses.
author:
  - Portico maintainers (@portico-k8s)
extends_documentation_fragment:
  - portico.k8s.k8s_auth
  - portico.k8s.k8s_auth.plugins
  - portico.k8s.routing
requirements:
  - kubernetes >= 30.1.0 (the Kubernetes Python client)
  - jmespath (only for O(filter))
'''

EXAMPLES = r'''
- name: List the frontend ports the load balancers would open
  ansible.builtin.debug:
    msg: "{{ lookup('portico.k8s.nodeports', label_selector='exposure=edge').frontends | map(attribute='port') }}"

- name: Why is a service not exposed?
  ansible.builtin.debug:
    msg: "{{ lookup('portico.k8s.nodeports', namespaces=['shop']).excluded_services }}"

- name: Eligible nodes from a snapshot
  ansible.builtin.debug:
    msg: "{{ lookup('portico.k8s.nodeports', snapshot='cluster.json').nodes }}"
'''

RETURN = r'''
_raw:
  description:
    - A list with one element, the routing model; see the RV(portico.k8s.nodeport_info#module:model)
      return value of the module for its keys (nodes, excluded_nodes, frontends, backends,
      services, excluded_services, summary, source).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.portico.k8s.plugins.module_utils._client import (
    HAS_KUBERNETES,
    KubeError,
)
from ansible_collections.portico.k8s.plugins.module_utils._cluster import HAS_JMESPATH
from ansible_collections.portico.k8s.plugins.module_utils._collect import collect_model

display = Display()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError('portico.k8s.nodeports takes no terms, only options; got %r' % (terms,))
        self.set_options(var_options=variables, direct=kwargs)
        if not self.get_option('snapshot') and not HAS_KUBERNETES:
            raise AnsibleLookupError('portico.k8s.nodeports needs the kubernetes Python library '
                                     '(pip install kubernetes) on the controller')
        if self.get_option('filter') and not HAS_JMESPATH:
            raise AnsibleLookupError('the filter option needs the jmespath Python library on the controller')
        try:
            return [collect_model(self.get_option, display.warning)]
        except KubeError as exc:
            raise AnsibleLookupError('portico.k8s.nodeports: %s' % exc)
