# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The options that choose services and nodes, shared by the module and the lookup."""

    DOCUMENTATION = r'''
options:
  snapshot:
    description:
      - Read the cluster from this JSON file instead of the API, a Kubernetes C(List) as written by
        C(kubectl get nodes,services -A -o json). For load-balancer networks that cannot reach
        the API, and for the demo. The connection options are ignored when it is set.
    type: path
  namespaces:
    description:
      - Only consider services in these namespaces. Empty means every namespace.
    type: list
    elements: str
    default: []
  label_selector:
    description:
      - Only consider services matching this Kubernetes label selector, for example
        C(expose=external,tier!=internal).
    type: str
  filter:
    description:
      - A JMESPath expression evaluated on each Service object (as the API returns it); only
        services for which it is true are considered, for example
        C(metadata.annotations."example.com/public" == 'yes').
      - Needs the C(jmespath) Python library.
    type: str
  address_types:
    description:
      - Node address types in order of preference; a node's first valid address of the first
        type it has is used as the backend server address.
    type: list
    elements: str
    choices: [InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS]
    default: [InternalIP, ExternalIP]
  frontend_port:
    description:
      - Which port each frontend binds on the load balancers.
      - V(service_port) binds the service's C(port) (a service on port 80 is reachable on port 80
        of the load balancer); V(node_port) binds the nodePort itself, which never conflicts.
    type: str
    choices: [service_port, node_port]
    default: service_port
  api_timeout:
    description:
      - Seconds to wait for the API server to answer each request.
    type: int
    default: 30
  page_size:
    description:
      - How many objects to ask for per page when listing (the C(limit) parameter).
    type: int
    default: 500
  allow_no_nodes:
    description:
      - Accept a model in which no node is eligible. By default that fails, because every
        backend would be empty and the load balancers would refuse all traffic.
    type: bool
    default: false
'''
