# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routing model: plain dicts in, plain dicts out.

Private to this collection. The model is factored: eligible nodes once, and each
backend names its nodePort and which nodes serve it ("all" or a list of names).
The services x nodes cross product exists only in the rendered haproxy.cfg.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portico.k8s.plugins.module_utils._names import (
    InvalidValue,
    namespace_name,
    port_name,
    port_number,
    section_name,
    service_name,
)
from ansible_collections.portico.k8s.plugins.module_utils._drain import draining_nodes
from ansible_collections.portico.k8s.plugins.module_utils._nodes import eligible_nodes
from ansible_collections.portico.k8s.plugins.module_utils._traffic import (
    Subsetter,
    health_check,
    ready_nodes_by_service,
    serving_nodes,
)

FRONTEND_PORT_SOURCES = ('service_port', 'node_port')
# Services without a creation time sort as the youngest, so they never take a port away.
_NO_TIME = '9999-12-31T23:59:59Z'


def _service_id(service):
    return '%s/%s' % (service.get('namespace'), service.get('name'))


def _exclusion(service_id, port, reason):
    return {'service': service_id, 'port': port, 'reason': reason}


def _port_label(port):
    return '%s/%s' % (port.get('port'), port.get('protocol'))


def service_candidates(service, options):
    """The exposable ports of one slim service, and the exclusions with reasons.

    Returns (candidates, excluded); a candidate is one TCP service port with its nodePort.
    """
    service_id = _service_id(service)
    try:
        namespace_name(service.get('namespace'))
        service_name(service.get('name'))
    except InvalidValue as exc:
        return [], [_exclusion(service_id, None, 'invalid: %s' % exc)]
    frontend_port_source = options.get('frontend_port') or 'service_port'
    candidates, excluded = [], []
    for port in service.get('ports') or []:
        label = _port_label(port)
        try:
            name = port_name(port.get('name'))
            number = port_number(port.get('port'), 'port')
        except InvalidValue as exc:
            excluded.append(_exclusion(service_id, label, 'invalid: %s' % exc))
            continue
        if port.get('protocol') != 'TCP':
            excluded.append(_exclusion(service_id, label, '%s ports cannot be balanced by HAProxy'
                                       % (port.get('protocol'),)))
            continue
        if port.get('node_port') is None:
            excluded.append(_exclusion(service_id, label, 'no nodePort allocated'))
            continue
        try:
            node_port = port_number(port.get('node_port'), 'nodePort')
        except InvalidValue as exc:
            excluded.append(_exclusion(service_id, label, 'invalid: %s' % exc))
            continue
        candidates.append({
            'service': service_id,
            'namespace': service['namespace'],
            'service_name': service['name'],
            'port_name': name,
            'service_port': number,
            'node_port': node_port,
            'frontend_port': node_port if frontend_port_source == 'node_port' else number,
            'created': service.get('created') or _NO_TIME,
            'traffic_policy': service.get('external_traffic_policy') or 'Cluster',
            'health_check_node_port': service.get('health_check_node_port'),
        })
    if not candidates and not excluded:
        excluded.append(_exclusion(service_id, None, 'no ports'))
    return candidates, excluded


def assign_frontend_ports(candidates):
    """Give each frontend port to its oldest claimant; the rest are excluded with the winner named."""
    winners, excluded, owner = [], [], {}
    order = sorted(candidates, key=lambda c: (c['created'], c['namespace'], c['service_name'], c['service_port']))
    for candidate in order:
        port = candidate['frontend_port']
        if port in owner:
            excluded.append(_exclusion(candidate['service'], '%d/TCP' % candidate['service_port'],
                                       'frontend port %d is already taken by the older service %s'
                                       % (port, owner[port])))
            continue
        owner[port] = candidate['service']
        winners.append(candidate)
    return winners, excluded


def _backend_nodes(name, candidate, eligible_names, ready_by_service, subsetter):
    nodes = serving_nodes(candidate, eligible_names, ready_by_service)
    if subsetter.size:
        picked = subsetter.pick(name, eligible_names if nodes == 'all' else nodes)
        return 'all' if picked is eligible_names else picked
    return nodes


def build_model(nodes, services, options=None, source=None, endpoint_slices=None):
    """The routing model from slim nodes, candidate services and slices (see _cluster)."""
    options = options or {}
    eligible, excluded_nodes = eligible_nodes(nodes, options)
    eligible_names = [node['name'] for node in eligible]
    draining = draining_nodes(options.get('drain_state'), eligible, options.get('now') or 0,
                              options.get('drain_seconds') or 0)
    ready_by_service = ready_nodes_by_service(endpoint_slices or [])
    subsetter = Subsetter(options.get('backend_subset_size') or 0, eligible_names)
    candidates, excluded_services, counts = [], [], {}
    for service in services:
        counts[_service_id(service)] = counts.get(_service_id(service), 0) + 1
    for service in services:
        service_id = _service_id(service)
        # Listed twice (only a hand-made snapshot can): which copy is right is unknowable.
        if counts[service_id] > 1:
            excluded_services.append(_exclusion(service_id, None, 'listed more than once'))
            continue
        found, excluded = service_candidates(service, options)
        candidates.extend(found)
        excluded_services.extend(excluded)
    winners, conflicts = assign_frontend_ports(candidates)
    excluded_services.extend(conflicts)

    frontends, backends, by_service = [], [], {}
    for candidate in winners:
        name = section_name(candidate['namespace'], candidate['service_name'], candidate['service_port'])
        frontends.append({
            'name': name,
            'port': candidate['frontend_port'],
            'mode': 'tcp',
            'backend': name,
            'service': candidate['service'],
            'service_port': candidate['service_port'],
        })
        backends.append({
            'name': name,
            'service': candidate['service'],
            'namespace': candidate['namespace'],
            'service_name': candidate['service_name'],
            'port_name': candidate['port_name'],
            'service_port': candidate['service_port'],
            'node_port': candidate['node_port'],
            'mode': 'tcp',
            'balance': 'roundrobin',
            'traffic_policy': candidate['traffic_policy'],
            'check': health_check(candidate, options),
            'nodes': _backend_nodes(name, candidate, eligible_names, ready_by_service, subsetter),
        })
        by_service.setdefault(candidate['service'], []).append(name)
    frontends.sort(key=lambda f: f['port'])
    backends.sort(key=lambda b: b['name'])
    excluded_services.sort(key=lambda e: (e['service'], e['port'] or '', e['reason']))
    return {
        'source': source or {},
        'nodes': eligible,
        'excluded_nodes': excluded_nodes,
        'draining_nodes': draining,
        'frontends': frontends,
        'backends': backends,
        'services': [{'service': s, 'backends': sorted(b)} for s, b in sorted(by_service.items())],
        'excluded_services': excluded_services,
        'summary': {
            'nodes': len(eligible),
            'excluded_nodes': len(excluded_nodes),
            'draining_nodes': len(draining),
            'services': len(by_service),
            'frontends': len(frontends),
            'backends': len(backends),
            'excluded_services': len(excluded_services),
            'backends_without_nodes': sum(1 for b in backends if b['nodes'] == []),
        },
    }
