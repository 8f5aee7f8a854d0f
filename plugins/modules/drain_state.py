#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: drain_state
short_description: Remember the nodes the load balancers serve, so that a node that leaves drains first
version_added: 0.3.0
description:
  - Runs on the controller only (an action plugin), after every load balancer took a routing model.
    The P(portico.k8s.haproxy_sync#role) role runs it (entry point C(remember)) when
    C(haproxy_sync_drain_state_file) is set.
  - Writes the model's drain state (which cluster, the nodes served and the nodes draining; the text of
    the P(portico.k8s.drain_record#filter) filter) to O(path), which the next run's
    M(portico.k8s.nodeport_info) reads back (O(portico.k8s.nodeport_info#module:drain_state_file)).
  - The file is written as the user who runs the play, with mode C(0600), and replaced atomically, so a
    reader sees the old state or the new one. A file that already holds the state is not touched, and
    the task reports no change (only a mode other than C(0600) is set right). A missing directory is made
    with mode C(0700); an existing one keeps its mode.
author:
  - Portico maintainers (@portico-k8s)
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Says whether the file would change; writes nothing, makes no directory.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: Runs on the controller only; nothing runs on the host.
options:
  model:
    description:
      - The routing model the load balancers took, RV(portico.k8s.nodeport_info#module:model) (a dict),
        or its JSON text, RV(portico.k8s.nodeport_info#module:model_json) (C(haproxy_sync_model_json)).
    type: raw
    required: true
  path:
    description:
      - The drain state file, on the controller.
    type: path
    required: true
notes:
  - A model that is not one of M(portico.k8s.nodeport_info), or a file or directory this user cannot
    read or write, fails the task with a message that names it; the file is then left as it was.
seealso:
  - module: portico.k8s.nodeport_info
  - plugin: portico.k8s.drain_record
    plugin_type: filter
'''

EXAMPLES = r'''
- name: Remember the nodes the load balancers serve
  portico.k8s.drain_state:
    model: "{{ haproxy_sync_model_json }}"
    path: /var/lib/portico/drain-state.json
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
path:
  description: The drain state file.
  returned: success
  type: str
  sample: /var/lib/portico/drain-state.json
'''

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        model=dict(type='raw', required=True),
        path=dict(type='path', required=True),
    ), supports_check_mode=True)
    module.fail_json(msg='portico.k8s.drain_state runs on the controller, as an action plugin; it has no module part')


if __name__ == '__main__':
    main()
