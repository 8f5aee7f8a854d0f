# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""portico.k8s.drain_state: on the controller, after every load balancer took a model, keep the
nodes they serve in the drain state file (the decisions are in module_utils/_drain)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.portico.k8s.plugins.module_utils._drain import DrainStateError, keep_record, record
from ansible_collections.portico.k8s.plugins.module_utils._summary import read_model

ARGUMENT_SPEC = dict(
    model=dict(type='raw', required=True),
    path=dict(type='path', required=True),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check_mode = bool(self._task.check_mode or self._play_context.check_mode)
        path = args['path']
        try:
            text = record(read_model(args['model'], 'model'))
            changed, before = keep_record(path, text, check_mode)
        except (ValueError, DrainStateError) as exc:
            result.update(failed=True, changed=False, msg=str(exc))
            return result
        result.update(changed=changed, path=path)
        if changed and self._task.diff:
            result['diff'] = {'before_header': path, 'after_header': path,
                              'before': before or '', 'after': text}
        return result
