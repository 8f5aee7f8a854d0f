#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: sync_report
short_description: Report what a sync did on each load balancer, as a JSON file and the job's stats
version_added: 0.3.0
description:
  - Runs on the controller only (an action plugin), at the end of a sync and when one fails. The
    P(portico.k8s.haproxy_sync#role) role runs it (entry point C(record)), and passes RV(stats) to
    M(ansible.builtin.set_stats), so AWX shows them on the job.
  - "For the run: its result, the stage that failed and why, when it ended, when a sync last
    succeeded (a failed run keeps that time), and how many load balancers reloaded or took server
    changes through the runtime API. For the model: its generation (a hash of what it makes the
    load balancers serve), the cluster state it was read from, its counts (frontends, backends,
    eligible, draining and excluded nodes, excluded services) and the first services left out with
    the reason. For each load balancer: its result, the way it took the model (C(reload), C(runtime),
    C(installed) for a file whose comments alone changed, C(none), C(outdated) when a newer model was
    there, C(failed), C(unreachable), C(not reached)), why it reloaded, its message and when a sync
    last succeeded there."
  - A record, not a change; it reports C(changed=false). In check mode it writes no file, and the
    ways are the ones the run would take.
author:
  - Portico maintainers (@portico-k8s)
attributes:
  action:
    description: Runs on the controller as an action plugin.
    support: full
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: The report is computed; no file is written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
    details: Runs on the controller only; nothing runs on the host.
options:
  load_balancers:
    description: The load balancers of the run, in order.
    type: list
    elements: str
    default: []
  result_variable:
    description: The variable each load balancer registered the result of its M(portico.k8s.haproxy_config) step in.
    type: str
    default: _haproxy_sync_host_step
  model:
    description: The run's routing model (the dict, or its JSON text); unset when it was never collected.
    type: raw
  failure:
    description:
      - Set when the run failed outside a load balancer's step, a dict with C(stage) (such as V(collect))
        and C(message).
    type: dict
  path:
    description:
      - Write the report here as JSON (atomically, mode C(0644); a missing directory is made with mode C(0700)).
        The report there before is read first, for the times of the last success. Unset, no file.
    type: path
'''

EXAMPLES = r'''
- name: Report the run
  portico.k8s.sync_report:
    load_balancers: "{{ groups['loadbalancers'] }}"
    model: "{{ haproxy_sync_model_json }}"
    path: /var/lib/portico/last-sync.json
  register: report
  run_once: true
  delegate_to: localhost

- name: Show it on the AWX job
  ansible.builtin.set_stats:
    data:
      portico_sync: "{{ report.stats }}"
    aggregate: false
  run_once: true
'''

RETURN = r'''
report:
  description: The report, as written to O(path).
  returned: success
  type: dict
  sample:
    run: {result: success, finished_at: 1767261600.0, check_mode: false, last_success_at: 1767261600.0,
          reloads: 1, runtime_updates: 1, runtime_server_changes: 2}
    model: {generation: 3f2a9c1d0e4b7a65, source: {kind: api, server: "https://k8s.example.com:6443",
            resource_version: "48213", read_at: 1767261590.1},
            counts: {frontends: 3, backends: 3, eligible_nodes: 3, draining_nodes: 0, excluded_nodes: 1,
                     excluded_services: 1},
            excluded_services: ["infra/dns 53/UDP: UDP ports cannot be balanced by HAProxy"], warnings: []}
    load_balancers:
      lb1: {result: success, way: reload, changed: true, reload_reason: "frontends, backends or their settings changed (frontend shop.web.443 is new)",
            message: "lb1: installed the new /etc/haproxy/haproxy.cfg and reloaded HAProxy ...", last_success_at: 1767261600.0}
stats:
  description: The same, without the lists of excluded services and warnings, for M(ansible.builtin.set_stats).
  returned: success
  type: dict
path:
  description: The file written.
  returned: when written
  type: str
msg:
  description: How the run went, in one line.
  returned: success
  type: str
  sample: 'the sync succeeded; lb1: reload, lb2: runtime'
'''

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        load_balancers=dict(type='list', elements='str', default=[]),
        result_variable=dict(type='str', default='_haproxy_sync_host_step'),
        model=dict(type='raw'),
        failure=dict(type='dict'),
        path=dict(type='path'),
    ), supports_check_mode=True)
    module.fail_json(msg='portico.k8s.sync_report runs on the controller, as an action plugin; it has no module part')


if __name__ == '__main__':
    main()
