#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_status
short_description: Show what one load balancer serves now, since when, whether the cluster drifted, and each server's state
version_added: 0.3.0
description:
  - Reads, and changes nothing; it takes no lock, so it is safe at any time, also while a sync runs.
    C(playbooks/status.yml) runs it on every load balancer.
  - "What the installed file serves: the frontends (with their binds) and backends (with their servers)
    of its generated part, and the record beside it (C(<path>.portico-state)): the generation of the
    model it was made from, when it was installed, from which cluster state (the API server and
    resourceVersion, or the snapshot, and when it was read), and the model's counts."
  - "Drift: whether the cluster gives the same model now, from O(current) (the generation of a model
    collected now, see M(portico.k8s.nodeport_info))."
  - "Each server's state per backend from HAProxy's stats socket: C(show stat) (CSV) and C(show servers
    state), parsed: V(UP), V(DOWN), V(DRAIN) (weight 0, a node that drains), V(MAINT), and V(MISSING) for a
    server of the file that HAProxy does not run. Servers HAProxy still runs that the file no longer has
    (removed, finishing their connections) are marked C(leaving)."
author:
  - Portico maintainers (@portico-k8s)
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: It only reads, in check mode as otherwise.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  path:
    description: The HAProxy configuration file the sync manages.
    type: path
    default: /etc/haproxy/haproxy.cfg
  runtime_socket:
    description: HAProxy's stats socket; unset, the first C(stats socket) of the installed file.
    type: path
  current:
    description:
      - What the cluster gives now, to tell drift; a dict with C(generation) (and C(counts)) of a model
        collected now, or with C(error) when the cluster could not be read. Unset, drift is unknown.
    type: dict
  load_balancer:
    description: The name of this host in the view.
    type: str
'''

EXAMPLES = r'''
- name: Read the cluster now (read-only)
  portico.k8s.nodeport_info:
  register: now
  delegate_to: localhost
  run_once: true

- name: What this load balancer serves, and whether it drifted
  portico.k8s.haproxy_status:
    current:
      generation: "{{ now.generation }}"
      counts: "{{ now.model.summary }}"
  register: status

- name: Show it
  ansible.builtin.debug:
    msg: "{{ status.view }}"
'''

RETURN = r'''
msg:
  description: The first line of RV(view).
  returned: always
  type: str
view:
  description: The status view, as lines.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      lb1: /etc/haproxy/haproxy.cfg serves 2 frontends, 2 backends, 6 servers (model: 3 eligible nodes, 0 draining);
      installed 2026-01-01 10:00:00 UTC (12 minutes ago)
    - >-
      model: generation 3f2a9c1d0e4b7a65, from the Kubernetes API https://k8s.example.com:6443 at resourceVersion
      48213, read 2026-01-01 09:59:58 UTC (12 minutes ago)
    - 'drift: none: the cluster gives the same model now (generation 3f2a9c1d0e4b7a65)'
    - 'servers: 5 UP, 1 DOWN, 0 DRAIN, 0 MAINT'
    - 'shop.web.443 on *:443: worker-1 UP, worker-2 DOWN (L4CON Layer4 connection problem, 14s), worker-3 UP'
exists:
  description: Whether the configuration file exists.
  returned: always
  type: bool
installed:
  description:
    - The record beside the file of what it serves, C(generation), C(installed_at), C(source) and C(counts);
      C(model_read_at) and C(unverified) too. Empty when no sync of this version installed it.
  returned: always
  type: dict
frontends:
  description: The frontends of the generated part, each with C(name) and C(binds).
  returned: always
  type: list
  elements: dict
servers:
  description:
    - Per backend of the generated part, its servers, each with C(server), C(state) (V(UP), V(DOWN), V(DRAIN),
      V(MAINT) or V(MISSING)), HAProxy's C(status) and C(check), C(address), C(since) (seconds since its last
      change), C(sessions) and C(leaving).
  returned: always
  type: dict
server_states:
  description: How many servers of the file are in each state.
  returned: always
  type: dict
  sample: {UP: 5, DOWN: 1, DRAIN: 0, MAINT: 0, MISSING: 0}
backends_without_up:
  description: The backends of which no server is UP.
  returned: always
  type: list
  elements: str
drift:
  description: C(state) (V(none), V(changed) or V(unknown)) and C(message), with C(current_generation) when known.
  returned: always
  type: dict
metrics:
  description: The binds of the metrics frontend, if the file has one.
  returned: always
  type: list
  elements: str
socket_problem:
  description: Why the stats socket told nothing, when it did not answer.
  returned: when it did not answer
  type: str
'''

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portico.k8s.plugins.module_utils import _status_view
from ansible_collections.portico.k8s.plugins.module_utils._config import stats_socket
from ansible_collections.portico.k8s.plugins.module_utils._lock import installed_state
from ansible_collections.portico.k8s.plugins.module_utils._runtime import RuntimeAPIError, ask
from ansible_collections.portico.k8s.plugins.module_utils._servers import StateError, read_state


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type='path', default='/etc/haproxy/haproxy.cfg'),
        runtime_socket=dict(type='path'),
        current=dict(type='dict'),
        load_balancer=dict(type='str'),
    ), supports_check_mode=True)
    path = module.params['path']
    name = module.params['load_balancer'] or socket.gethostname()
    try:
        with open(path, 'r', errors='replace') as handle:
            text = handle.read()
        exists = True
    except FileNotFoundError:
        text, exists = '', False
    except (IOError, OSError) as exc:
        module.fail_json(msg='%s: cannot read %s: %s' % (name, path, exc))
    state = installed_state(path)
    frontends, backends, metrics = _status_view.generated(text)
    runtime = module.params['runtime_socket'] or stats_socket(text)
    problem, rows, running = None, [], {}
    if not runtime:
        problem = 'the file declares no stats socket'
    else:
        try:
            rows = _status_view.read_stat(ask(runtime, 'show stat -1 4 -1', timeout=10.0))
            running = read_state(ask(runtime, 'show servers state', timeout=10.0))
        except (RuntimeAPIError, StateError) as exc:
            problem = str(exc)
    by_backend = _status_view.servers(rows, backends, running) if problem is None else dict(
        (backend, []) for backend in backends)
    found = _status_view.drift(state.get('serves'), module.params['current'])
    view = _status_view.lines(name, path, state, frontends, by_backend, metrics, found, problem)
    if not exists:
        view = ['%s: %s does not exist: no sync installed it yet' % (name, path)] + view[1:]
    installed = dict(state.get('serves') or {})
    installed.update(model_read_at=state.get('model_read_at'), unverified=bool(state.get('unverified')))
    result = dict(changed=False, msg=view[0], view=view, exists=exists, installed=installed, frontends=frontends,
                  servers=by_backend, server_states=_status_view.tally(by_backend) if problem is None else {},
                  backends_without_up=_status_view.without_up(by_backend) if problem is None else [],
                  drift=found, metrics=metrics)
    if problem:
        result['socket_problem'] = problem
    module.exit_json(**result)


if __name__ == '__main__':
    main()
