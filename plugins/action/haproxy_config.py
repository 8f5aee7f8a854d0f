# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller half of portico.k8s.haproxy_config: check the inputs, unseal the TLS bundles
in memory, and run the module on the load balancer with pipelining (arguments on standard input)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.portico.k8s.plugins.module_utils._config import base_ports, input_problem, slim
from ansible_collections.portico.k8s.plugins.module_utils._metrics import MetricsError, host_problem, settings
from ansible_collections.portico.k8s.plugins.module_utils._seal import SealError, unseal

_MODULE = 'portico.k8s.haproxy_config'


def plain(value):
    """value as plain dicts, lists and scalars: JSON text is parsed, and containers that templating
    hands over (which resolve lazily) are copied."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise AnsibleActionFail('model is text but not JSON: %s' % exc)
    return json.loads(json.dumps(value))


def unseal_all(sealed, key):
    """file -> PEM text of the sealed bundles, or AnsibleActionFail."""
    if not isinstance(sealed, dict):
        raise AnsibleActionFail('sealed_certificates must be the sealed_certificates result of portico.k8s.nodeport_info')
    if sealed and not key:
        raise AnsibleActionFail('sealed_certificates need seal_key, the key this run sealed them with')
    try:
        return dict((name, unseal(key, name, text).decode('ascii')) for name, text in sealed.items())
    except (SealError, UnicodeDecodeError) as exc:
        raise AnsibleActionFail('cannot unseal the TLS certificates: %s' % exc)


def readable_hashes(args):
    """A warning when the metrics users' password hashes go into a file that every local user can read."""
    metrics = args.get('metrics') or {}
    try:
        mode = int(str(args.get('mode') or '0644'), 8)
    except ValueError:
        return None
    if isinstance(metrics, dict) and metrics.get('users') and mode & 0o004:
        return ('%s is readable by every user of the load balancer (haproxy_sync_config_mode %s) and holds the '
                'password hashes of haproxy_sync_metrics_users: set haproxy_sync_config_mode to "0640"'
                % (args.get('path') or 'haproxy.cfg', args.get('mode') or '0644'))
    return None


def _host(task_vars):
    return (task_vars or {}).get('inventory_hostname', 'this host')


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        sealed, key = args.pop('sealed_certificates', None), args.pop('seal_key', None)
        try:
            model = plain(args.get('model'))
            if not isinstance(args.get('base'), str):
                raise AnsibleActionFail('base must be the text of the base configuration')
            certificates = dict(args.pop('certificates', None) or {})
            if sealed:
                certificates.update(unseal_all(plain(sealed), key))
            problem = input_problem(model, args.get('base') or '', args.get('validate', 'haproxy -c -f %s'),
                                    args.get('cert_dir', '/etc/haproxy/portico-certs'), certificates,
                                    args.get('bind_address', '*'))
            if problem is None:
                try:
                    problem = host_problem(settings(args.get('metrics')), model, args.get('bind_address', '*'),
                                           base_ports(args.get('base') or ''),
                                           (args.get('keepalived') or {}).get('vips'))
                except MetricsError as exc:
                    problem = '%s; nothing was changed' % exc
            if problem:
                raise AnsibleActionFail(problem)
            wanted = set(c['file'] for c in model.get('certificates') or [])
            if wanted:
                args['certificates'] = dict((name, pem) for name, pem in certificates.items() if name in wanted)
                self._pipeline()
        except (TypeError, KeyError, AttributeError) as exc:
            result.update(failed=True, msg='%s: the model or the certificates are not what portico.k8s.nodeport_info '
                          'returns (%s: %s); nothing was changed' % (_host(task_vars), type(exc).__name__, exc))
            return result
        except AnsibleActionFail as exc:
            result.update(failed=True, msg='%s: %s' % (_host(task_vars), exc))
            return result
        # JSON text: the module's dict option parses it, and it costs nothing to template or copy
        args['model'] = json.dumps(slim(model), separators=(',', ':'))
        args.setdefault('load_balancer', _host(task_vars))
        result.update(self._execute_module(module_name=_MODULE, module_args=args, task_vars=task_vars))
        readable = readable_hashes(args)
        if readable:
            result.setdefault('warnings', []).append(readable)
        # the one line that says what happened here is worth showing without -v
        result['_ansible_verbose_always'] = True
        return result

    def _pipeline(self):
        """Send this call's arguments on standard input: the certificates must never rest in a file."""
        try:
            self._connection.set_option('pipelining', True)
        except KeyError:
            pass
        if not self._is_pipelining_enabled('new'):
            raise AnsibleActionFail(
                'the TLS certificates can only be sent with pipelining, and this connection cannot pipeline (%s, '
                'become method %s, or ANSIBLE_KEEP_REMOTE_FILES set); nothing was changed'
                % (self._connection.transport, getattr(self._connection.become, 'name', 'none')))
