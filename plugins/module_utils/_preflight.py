# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before a sync reads the cluster: which load balancers, and which variables, it was given.

Private to this collection; the decisions of the action plugin portico.k8s.sync_preflight, which
the portico.k8s.haproxy_sync role runs first. The model is collected on the controller
(``localhost``), while operators naturally set the role's variables on the load balancers'
group or hosts: the collect options found there are taken over when every load balancer has the
same value and the controller sets none, and refused when they disagree. A ``haproxy_sync_*``
variable that the role does not know is named in a warning. Values are never put in a message
when the argument specs say they are secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json

GROUP = 'loadbalancers'
PREFIX = 'haproxy_sync_'
# Set by playbooks/sync.yml and the role themselves, on top of the documented ones.
INTERNAL = frozenset(['haproxy_sync_model_json', 'haproxy_sync_sealed_certificates'])
# Options of the collect step about the controller's own facts, not about what is read: the load
# balancers' values are never taken over or compared.
CONTROLLER_ONLY = frozenset(['haproxy_sync_model_as_dict'])
# Values that may hold credentials even where the argument specs do not say no_log.
ALWAYS_SECRET = frozenset(['haproxy_sync_kubeconfig', 'haproxy_sync_proxy_headers'])
UNSET = object()


class PreflightError(ValueError):
    """The run would do nothing useful, or the wrong thing; the message says why and what to do."""


class Specs(object):
    """The variables of the role, from its meta/argument_specs.yml (parsed)."""

    def __init__(self, document):
        entry_points = (document or {}).get('argument_specs') if isinstance(document, dict) else None
        if not isinstance(entry_points, dict) or not isinstance((entry_points.get('collect') or {}).get('options'), dict):
            raise PreflightError('the argument specs given are not those of the portico.k8s.haproxy_sync role '
                                 '(no collect entry point with options)')
        self.known = set(INTERNAL)
        self.secret = set(ALWAYS_SECRET)
        for entry_point in entry_points.values():
            for name, spec in ((entry_point or {}).get('options') or {}).items():
                self.known.add(name)
                if isinstance(spec, dict) and spec.get('no_log'):
                    self.secret.add(name)
        self.collect = sorted(set(entry_points['collect']['options']) - CONTROLLER_ONLY)


def load_balancers(given, groups):
    """The hosts the run updates: those given (the play's, when the role runs in it), else the group's."""
    if given is not None:
        return list(given)
    hosts = (groups or {}).get(GROUP)
    if hosts:
        return list(hosts)
    others = sorted(name for name in (groups or {}) if name not in ('all', 'ungrouped', GROUP))
    found = ('the inventory has no group %s' % GROUP if GROUP not in (groups or {})
             else 'the group %s of the inventory has no hosts' % GROUP)
    raise PreflightError(
        '%s%s: this run would update no load balancer, and would still record the nodes it read as served (the '
        'drain state). Put the HAProxy hosts in a group named %s (an inventory with "children: {%s: {hosts: ...}}"), '
        'or give the inventory that has them (-i); nothing was changed'
        % (found, ' (its groups: %s)' % ', '.join(others[:10]) if others else '', GROUP, GROUP))


def _shown(name, value, specs):
    if value is UNSET:
        return 'unset'
    if name in specs.secret:
        return 'a value not shown'
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + '...'


def _by_value(name, values, specs):
    """'lb-a, lb-b: ["a"]; lb-c: unset' for {host: value}, hosts grouped by equal value."""
    groups = []
    for host in sorted(values):
        for entry in groups:
            if entry[0] is values[host] or (entry[0] is not UNSET and values[host] is not UNSET
                                            and entry[0] == values[host]):
                entry[1].append(host)
                break
        else:
            groups.append((values[host], [host]))
    return '; '.join('%s: %s' % (', '.join(hosts), _shown(name, value, specs)) for value, hosts in groups)


def collect_options(specs, controller, controller_values, lb_values):
    """The collect options to take from the load balancers' variables, sorted; PreflightError on a conflict.

    controller: the host that collects (localhost), or None when the role collects in the load
    balancers' own play (their variables are then the ones used). controller_values: {name: value}
    of its inventory variables (host, group and extra vars); lb_values: {host: {name: value}}.
    A name that is missing is unset.
    """
    taken, problems = [], []
    for name in specs.collect:
        values = dict((host, found.get(name, UNSET)) for host, found in lb_values.items())
        distinct = []
        for value in values.values():
            if not any(value is seen or (value is not UNSET and seen is not UNSET and value == seen) for seen in distinct):
                distinct.append(value)
        if len(distinct) > 1:
            problems.append('%s differs between the load balancers (%s)' % (name, _by_value(name, values, specs)))
            continue
        common = distinct[0] if distinct else UNSET
        mine = controller_values.get(name, UNSET)
        if controller is None or common is UNSET or (mine is not UNSET and mine == common):
            continue
        if mine is not UNSET:
            problems.append('%s is %s on the load balancers but %s on %s, where the model is collected'
                            % (name, _shown(name, common, specs), _shown(name, mine, specs), controller))
            continue
        taken.append(name)
    if problems:
        raise PreflightError(
            'the model is collected once, on the controller, for every load balancer, so each collect option has one '
            'value: %s. Set each once: in the inventory\'s "all" variables, in the variables of the group %s (all '
            'its hosts alike), or as an extra variable (-e); nothing was changed' % ('; '.join(problems), GROUP))
    return taken


def unknown_variables(specs, seen):
    """Warnings for haproxy_sync_* variables the role does not know; seen: {host: variable names}."""
    where = {}
    for host, names in seen.items():
        for name in names:
            if isinstance(name, str) and name.startswith(PREFIX) and name not in specs.known:
                where.setdefault(name, set()).add(host)
    warnings = []
    for name in sorted(where):
        close = difflib.get_close_matches(name, sorted(specs.known - INTERNAL), n=1, cutoff=0.8)
        hosts = sorted(where[name])
        warnings.append('%s (set for %s%s) is not a variable of the portico.k8s.haproxy_sync role, so it is ignored%s; '
                        '"ansible-doc -t role portico.k8s.haproxy_sync" lists the variables'
                        % (name, ', '.join(hosts[:5]), ' and %d more' % (len(hosts) - 5) if len(hosts) > 5 else '',
                           ' (did you mean %s?)' % close[0] if close else ''))
    return warnings
