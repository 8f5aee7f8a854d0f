# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""portico.k8s.sync_preflight: on the controller, before the cluster is read, the load balancers
a sync updates and the variables it was given (the decisions are in module_utils/_preflight)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.portico.k8s.plugins.module_utils._addresses import address_pools
from ansible_collections.portico.k8s.plugins.module_utils._metrics import MetricsError, load_balancer_ports
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue
from ansible_collections.portico.k8s.plugins.module_utils._preflight import (
    PreflightError,
    Specs,
    collect_options,
    load_balancers,
    unknown_variables,
)

# What each load balancer's metrics frontend is made of (the collect step reserves its port).
METRICS_VARIABLES = ('haproxy_sync_metrics_address', 'haproxy_sync_metrics_port', 'haproxy_sync_metrics_users',
                     'haproxy_sync_metrics_allow', 'haproxy_sync_bind_address', 'haproxy_sync_vips')
ARGUMENT_SPEC = dict(
    argument_specs=dict(type='path', required=True),
    load_balancers=dict(type='list', elements='str'),
)


def _values(host, host_vars, names):
    """{name: value} of the names a host's variables set (templated as that host sees them)."""
    found = {}
    for name in names:
        if name in host_vars:
            try:
                found[name] = host_vars[name]
            except AnsibleError as exc:
                raise PreflightError('cannot evaluate %s for %s: %s; nothing was changed' % (name, host, exc))
    return found


def _metrics_ports(hosts, hostvars, me, taken, lb_values):
    """The load balancers' metrics ports, their settings checked (never on a pool's address)."""
    name = 'haproxy_sync_address_pools'
    pools = lb_values[hosts[0]].get(name) if name in taken else _values(me, hostvars[me], [name]).get(name)
    try:
        checked_pools = address_pools(pools)
    except InvalidValue:
        checked_pools = []  # the collect step says what is wrong with them
    try:
        return load_balancer_ports(dict((host, _values(host, hostvars[host], METRICS_VARIABLES)) for host in hosts),
                                   checked_pools)
    except MetricsError as exc:
        raise PreflightError(str(exc))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        me = task_vars.get('inventory_hostname')
        hostvars = task_vars.get('hostvars') or {}
        try:
            try:
                specs = Specs(self._loader.load_from_file(args['argument_specs']))
            except AnsibleError as exc:
                raise PreflightError('cannot read the argument specs %s: %s' % (args['argument_specs'], exc))
            hosts = load_balancers(args.get('load_balancers'), task_vars.get('groups'))
            # the role in the load balancers' own play collects with their variables: nothing to take over
            controller = None if me in hosts else me
            lb_values = dict((host, _values(host, hostvars[host], specs.collect)) for host in hosts)
            mine = _values(me, hostvars[me], specs.collect) if controller else {}
            taken = collect_options(specs, controller, mine, lb_values)
            seen = dict((host, list(hostvars[host])) for host in hosts)
            # the collecting host's own: its inventory, play and role variables and extra vars
            seen[me] = list(task_vars)
            warnings = unknown_variables(specs, seen)
            metrics_ports = _metrics_ports(hosts, hostvars, me, taken, lb_values)
        except PreflightError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        shown = ', '.join(hosts[:5]) + (' and %d more' % (len(hosts) - 5) if len(hosts) > 5 else '')
        result.update(
            changed=False, load_balancers=hosts, from_load_balancers=taken, metrics_ports=metrics_ports,
            msg='%d load balancer%s (%s); %s' % (
                len(hosts), '' if len(hosts) == 1 else 's', shown,
                'taken from their variables: %s' % ', '.join(taken) if taken
                else 'every collect option as %s sees it' % (controller or 'each of them')))
        if warnings:
            result['warnings'] = warnings
        return result
