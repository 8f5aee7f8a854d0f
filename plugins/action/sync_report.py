# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""portico.k8s.sync_report: on the controller, after a sync (or when it failed), what it did per
load balancer, as a JSON report file and the job's stats (the figures are in module_utils/_report)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically
from ansible_collections.portico.k8s.plugins.module_utils._report import run_report, stats

ARGUMENT_SPEC = dict(
    load_balancers=dict(type='list', elements='str', default=[]),
    result_variable=dict(type='str', default='_haproxy_sync_host_step'),
    model=dict(type='raw'),
    failure=dict(type='dict'),
    path=dict(type='path'),
)


def _model(value):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _read(path):
    """(the previous report or None, a warning or None)."""
    try:
        with open(path, 'rb') as handle:
            report = json.loads(handle.read().decode('utf-8'))
    except FileNotFoundError:
        return None, None
    except (IOError, OSError, ValueError) as exc:
        return None, 'the report %s cannot be read (%s): this run starts it afresh' % (path, exc)
    if not isinstance(report, dict):
        return None, 'the report %s is not a JSON object: this run starts it afresh' % path
    return report, None


def summary(report):
    """One line: how the run went, and which way each load balancer took it."""
    run = report['run']
    hosts = report['load_balancers']
    ways = ', '.join('%s: %s' % (name, entry['way']) for name, entry in list(hosts.items())[:10])
    more = ' and %d more' % (len(hosts) - 10) if len(hosts) > 10 else ''
    head = ('the sync %s' % ('would succeed' if run['check_mode'] else 'succeeded') if run['result'] == 'success'
            else 'the sync failed (%s): %s' % (run.get('failed_stage'), run.get('message')))
    return '%s; %s%s' % (head, ways or 'no load balancer', more)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check_mode = bool(self._task.check_mode or self._play_context.check_mode)
        hostvars = task_vars.get('hostvars') or {}
        results = []
        for host in args['load_balancers']:
            try:
                found = hostvars[host].get(args['result_variable']) if host in hostvars else None
            except AnsibleError:
                found = None
            results.append((host, dict(found) if isinstance(found, dict) else None))
        path = args.get('path')
        previous, warning = _read(path) if path else (None, None)
        report = run_report(previous, _model(args.get('model')), results, args.get('failure'),
                            round(time.time(), 3), check_mode)
        result.update(changed=False, report=report, stats=stats(report), msg=summary(report))
        if warning:
            result['warnings'] = [warning]
        if path and not check_mode:
            try:
                self._write(path, report)
                result['path'] = path
            except (IOError, OSError) as exc:
                result.setdefault('warnings', []).append('cannot write the report %s (haproxy_sync_report): %s'
                                                         % (path, exc))
        return result

    @staticmethod
    def _write(path, report):
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            # like the drain state's: a missing directory is this user's only
            os.makedirs(directory, 0o700)
        text = (json.dumps(report, indent=2, sort_keys=True) + '\n').encode('utf-8')
        replace_atomically(path, lambda out: out.write(text), 0o644)
