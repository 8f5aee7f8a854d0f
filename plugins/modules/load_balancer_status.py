#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: load_balancer_status
short_description: Write the addresses of LoadBalancer Services to their status, and tell it in Events
version_added: 0.3.0
description:
  - Takes RV(portico.k8s.nodeport_info#module:model.load_balancers) of a routing model and writes each
    Service's C(status.loadBalancer.ingress) (its address, C(ipMode=Proxy) and the ports served) with a
    merge patch of the C(status) subresource, or removes it from Services Portico no longer serves. Only
    a status Portico wrote itself is removed; another controller's is left alone.
  - Each patch carries the C(resourceVersion) the model was read at, so a Service that changed since
    is not written (409 Conflict) and is left for the next run.
  - Posts an Event (C(events.k8s.io/v1)) on a Service when its address is assigned, changed, released
    or refused, with the reason. An Event's name is made of the Service and its news, so the same news
    is posted once, not on every run.
  - Writes nothing unless every load balancer of O(load_balancer_hosts) is in O(confirmed_hosts), so an
    address is written only once every load balancer serves it.
  - A failed write (no permission, a conflict, an API error) is reported as a warning and in
    RV(failed), and never fails the task, as the load balancers are already serving.
options:
  load_balancers:
    description: RV(portico.k8s.nodeport_info#module:model.load_balancers) of the model the load balancers serve.
    type: list
    elements: dict
    required: true
  load_balancer_hosts:
    description: The load balancers that must serve the model before any status is written.
    type: list
    elements: str
    default: []
  confirmed_hosts:
    description: The load balancers that installed and verified the model in this run.
    type: list
    elements: str
    default: []
  reporting_instance:
    description: The C(reportingInstance) of the Events (at most 128 characters); the controller's host name by default.
    type: str
  api_timeout:
    description: Seconds to wait for each answer of the API server.
    type: int
    default: 30
author:
  - Portico maintainers (@portico-k8s)
extends_documentation_fragment:
  - portico.k8s.k8s_auth
  - portico.k8s.attributes.action_group
attributes:
  check_mode:
    description: Can run in check mode and return what it would write.
    support: full
    details: In check mode it writes nothing to the cluster and returns the status and Events it would write.
  diff_mode:
    description: Will return details on what has changed when in diff mode.
    support: full
    details: Each Service's status before and after, with the Event it posts.
  idempotent:
    description: A second run on the same cluster state writes nothing.
    support: full
requirements:
  - kubernetes >= 30.1.0 (the Kubernetes Python client)
notes:
  - The account needs C(patch) on C(services/status) and C(create) on C(events) in the
    C(events.k8s.io) API group. Without them nothing is written, and a warning says which is missing.
'''

EXAMPLES = r'''
- name: Read the routing model
  portico.k8s.nodeport_info:
    address_pools:
      - name: default
        addresses: [192.0.2.16/28]
  register: routing

- name: Write the Services' addresses once every load balancer serves them
  portico.k8s.load_balancer_status:
    load_balancers: "{{ routing.model.load_balancers }}"
    load_balancer_hosts: "{{ groups['loadbalancers'] }}"
    confirmed_hosts: "{{ groups['loadbalancers'] }}"
'''

RETURN = r'''
written:
  description: The Services whose status was written (in check mode, would be), with the ingress written.
  returned: always
  type: list
  elements: dict
  sample: [{service: shop/web, ingress: [{ip: 192.0.2.17, ipMode: Proxy, ports: [{port: 443, protocol: TCP}]}]}]
events:
  description: The Events posted (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  sample: [{service: shop/web, reason: AddressAssigned, type: Normal, note: assigned 192.0.2.17 from pool default}]
failed:
  description: The Services whose status could not be written, and why; the next run tries again.
  returned: always
  type: list
  elements: dict
  sample: [{service: shop/web, reason: "the service changed since it was read (409 Conflict); its status is written by the next run"}]
unconfirmed_hosts:
  description: The load balancers of O(load_balancer_hosts) that did not confirm the model; when any, nothing is written.
  returned: always
  type: list
  elements: str
'''

import socket

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.portico.k8s.plugins.module_utils._client import (
    CONNECTION_OPTIONS,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KubeClient,
    KubeError,
    connection_argument_spec,
)
from ansible_collections.portico.k8s.plugins.module_utils._status import StatusWriter, diffs, unconfirmed


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        load_balancers=dict(type='list', elements='dict', required=True),
        load_balancer_hosts=dict(type='list', elements='str', default=[]),
        confirmed_hosts=dict(type='list', elements='str', default=[]),
        reporting_instance=dict(type='str'),
        api_timeout=dict(type='int', default=30),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    result = dict(changed=False, written=[], events=[], failed=[],
                  unconfirmed_hosts=unconfirmed(params['load_balancer_hosts'], params['confirmed_hosts']))
    entries = params['load_balancers']
    if result['unconfirmed_hosts']:
        if any(entry.get('write') or entry.get('event') for entry in entries):
            module.warn('no status was written: load balancer(s) %s did not install and verify this run\'s '
                        'configuration; the next run writes it' % ', '.join(result['unconfirmed_hosts']))
        module.exit_json(**result)
    if not any(entry.get('write') or entry.get('event') for entry in entries):
        module.exit_json(**result)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)
    try:
        client = KubeClient(dict((name, params.get(name)) for name in CONNECTION_OPTIONS),
                            timeout=params['api_timeout'])
    except KubeError as exc:
        # the load balancers serve already: a status that cannot be written waits for the next run
        module.warn('the status of LoadBalancer services was not written: %s' % exc)
        module.exit_json(**result)
    writer = StatusWriter(client, params['reporting_instance'] or socket.gethostname(), module.check_mode)
    try:
        writer.run(entries)
    except KubeError as exc:
        # no answer at all (network, TLS): the load balancers serve already; the next run writes the rest
        module.warn('the status of LoadBalancer services was not all written: %s' % exc)
    finally:
        client.close()
    for warning in writer.warnings:
        module.warn(warning)
    for failure in writer.failed:
        module.warn('%s: %s' % (failure['service'], failure['reason']))
    result.update(changed=writer.changed, written=writer.written, events=writer.events, failed=writer.failed)
    if module._diff and writer.changed:
        told = set(e['service'] for e in writer.events) | set(w['service'] for w in writer.written)
        result['diff'] = diffs([entry for entry in entries if entry['service'] in told])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
