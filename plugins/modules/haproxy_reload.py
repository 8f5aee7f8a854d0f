#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_reload
short_description: Reload HAProxy, check that it serves, and put the previous configuration back if not
version_added: 0.2.0
deprecated:
  removed_in: 1.0.0
  why: "The host step is one call now: M(portico.k8s.haproxy_config) reloads, checks the new worker and restores on failure itself."
  alternative: Use M(portico.k8s.haproxy_config).
description:
  - Runs O(command) (without a shell), then waits until O(wait_port) on O(wait_host) accepts TCP
    connections.
  - If either fails and O(restore_from) is given, copies that file back over O(path) (a temporary
    file in the same directory, then an atomic rename, keeping the mode and owner), runs O(command)
    again, and fails saying so.
  - After a good reload, removes the files of O(remove_after) (certificates only the previous
    configuration used), still under the lock.
  - Releases O(lock) (taken with M(portico.k8s.haproxy_lock), if it still holds O(token)) at the
    end, whatever happened, so a sync needs no separate call for it.
  - Used by the P(portico.k8s.haproxy_sync#role) role; it runs on the load balancer.
author:
  - Portico maintainers (@portico-k8s)
attributes:
  check_mode:
    description: Can run in check mode.
    support: none
    details: A reload cannot be simulated; the role skips this module in check mode.
  diff_mode:
    description: Will return details on what has changed when in diff mode.
    support: none
options:
  command:
    description: The reload command, split like a shell would split it but run without one.
    type: str
    required: true
  path:
    description: The configuration file that was installed.
    type: path
    required: true
  restore_from:
    description: The previous configuration (the backup the install kept). Unset, nothing is restored.
    type: path
  wait_host:
    description: Address to connect to after the reload; an IPv6 address may be in brackets.
    type: str
    default: 127.0.0.1
  wait_port:
    description: Port that must accept connections after the reload. Unset, nothing is waited for.
    type: int
  wait_timeout:
    description: Seconds to wait for O(wait_port).
    type: int
    default: 30
  lock:
    description: A lock directory to remove when done, whatever the outcome.
    type: path
  token:
    description: The token M(portico.k8s.haproxy_lock) returned; the lock is removed only if it still holds it.
    type: str
  model_time:
    description:
      - When the model just installed was read from the cluster; recorded beside O(path) after a good
        reload, so a run holding an older model leaves this host alone (see M(portico.k8s.haproxy_lock)).
    type: float
  remove_after:
    description: Files to remove once the reload succeeded (never when it failed, as the restored file may use them).
    type: list
    elements: path
    default: []
'''

EXAMPLES = r'''
- name: Reload, check, restore if needed, release the lock
  portico.k8s.haproxy_reload:
    command: systemctl reload haproxy
    path: /etc/haproxy/haproxy.cfg
    restore_from: "{{ installed.backup_file | default(omit) }}"
    wait_port: 80
    lock: /etc/haproxy/haproxy.cfg.portico-lock
    token: "{{ current.token }}"
'''

RETURN = r'''
restored:
  description: Whether the previous configuration was put back (the reload or the wait failed).
  returned: always
  type: bool
lock_released:
  description: Whether O(lock) was removed.
  returned: always
  type: bool
released_token:
  description: The O(token) of the lock this call released, or empty.
  returned: when O(lock) is given
  type: str
removed:
  description: The files of O(remove_after) that were removed.
  returned: always
  type: list
  elements: str
stdout:
  description: Output of the reload command.
  returned: always
  type: str
stderr:
  description: Error output of the reload command.
  returned: always
  type: str
'''

import os
import shlex
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically
from ansible_collections.portico.k8s.plugins.module_utils._lock import record_model_time, release
from ansible_collections.portico.k8s.plugins.module_utils._runtime import run_command, wait_for_port


def restore(source, path):
    """Copy source over path atomically, with path's mode and owner."""
    info = os.stat(path)

    def copy(out):
        with open(source, 'rb') as original:
            shutil.copyfileobj(original, out)
    replace_atomically(path, copy, info.st_mode & 0o7777,
                       (info.st_uid, info.st_gid) if os.geteuid() == 0 else None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            command=dict(type='str', required=True),
            path=dict(type='path', required=True),
            restore_from=dict(type='path'),
            wait_host=dict(type='str', default='127.0.0.1'),
            wait_port=dict(type='int'),
            wait_timeout=dict(type='int', default=30),
            lock=dict(type='path'),
            token=dict(type='str', no_log=False),
            remove_after=dict(type='list', elements='path', default=[]),
            model_time=dict(type='float'),
        ),
        supports_check_mode=False,
    )
    params = module.params
    result = dict(changed=True, restored=False, lock_released=False, removed=[], stdout='', stderr='')

    def finish(failed=None):
        if params['lock']:
            result['lock_released'] = release(params['lock'], params['token'])
            result['released_token'] = params['token'] if result['lock_released'] else ''
        if failed:
            module.fail_json(msg=failed, **result)
        module.exit_json(**result)

    try:
        argv = shlex.split(params['command'])
        rc, result['stdout'], result['stderr'] = run_command(module, argv)
        problem = None
        if rc != 0:
            problem = 'the reload command exited %d: %s' % (rc, (result['stderr'] or result['stdout']).strip())
        elif params['wait_port']:
            problem = wait_for_port(params['wait_host'].strip('[]'), params['wait_port'], params['wait_timeout'])
        if problem is None:
            if params['model_time'] is not None:
                record_model_time(params['path'], params['model_time'])
            for path in params['remove_after']:
                if os.path.lexists(path):
                    os.unlink(path)
                    result['removed'].append(path)
            finish()
        if params['restore_from']:
            restore(params['restore_from'], params['path'])
            result['restored'] = True
            again, dummy, error = run_command(module, argv)
            then = ('The previous configuration was put back and reloaded.' if again == 0 else
                    'The previous configuration was put back, but reloading it failed too (exit %d: %s); '
                    'check HAProxy on this host now.' % (again, error.strip()))
        else:
            then = ('No previous file to put back (the configuration did not change, or haproxy_sync_backup '
                    'is false), so the new file stays in place.')
        finish('Reloading HAProxy failed (%s). %s The rollout stops here; the load balancers after this one '
               'were not changed.' % (problem, then))
    except (OSError, ValueError) as exc:
        finish('Reloading HAProxy failed: %s' % exc)


if __name__ == '__main__':
    main()
