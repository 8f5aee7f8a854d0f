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

import hashlib
import ipaddress

from ansible_collections.portico.k8s.plugins.module_utils import _addresses
from ansible_collections.portico.k8s.plugins.module_utils._annotations import DEFAULT_PREFIX, parse_settings
from ansible_collections.portico.k8s.plugins.module_utils._names import (
    InvalidValue,
    namespace_name,
    port_name,
    port_number,
    section_name,
    service_name,
)
from ansible_collections.portico.k8s.plugins.module_utils._drain import draining_nodes
from ansible_collections.portico.k8s.plugins.module_utils._haproxy import MAX_BIND_CERTIFICATES, refusals
from ansible_collections.portico.k8s.plugins.module_utils._nodes import eligible_nodes
from ansible_collections.portico.k8s.plugins.module_utils._tls import name_matches
from ansible_collections.portico.k8s.plugins.module_utils._traffic import (
    Subsetter,
    health_check,
    local_nodes,
    ready_nodes_by_service,
    serving_nodes,
)

DEFAULT_ALLOCATE_RANGE = (20000, 29999)
# Services without a creation time sort as the youngest, so they never take a port away.
_NO_TIME = '9999-12-31T23:59:59Z'


def _service_id(service):
    return '%s/%s' % (service.get('namespace'), service.get('name'))


def _entry(service_id, port, reason):
    """An entry of excluded_services or warnings: which service (and port), and why."""
    return {'service': service_id, 'port': port, 'reason': reason}


def _tcp_port(candidate):
    return '%d/TCP' % candidate['service_port']


def _port_label(port):
    return '%s/%s' % (port.get('port'), port.get('protocol'))


def allocate_range(value):
    """(low, high) from "low-high" or a pair; ports below 1024 are never handed out."""
    if value is None or value == '':
        return DEFAULT_ALLOCATE_RANGE
    try:
        if isinstance(value, str):
            low, high = (int(part) for part in value.split('-'))
        else:
            low, high = (int(part) for part in value)
    except (TypeError, ValueError):
        raise InvalidValue('allocate_range %r is not "low-high"' % (value,))
    if not 1024 <= low <= high <= 65535:
        raise InvalidValue('allocate_range %r must be within 1024-65535, low first' % (value,))
    return low, high


def _expose(settings, options, prefix):
    """None when the service is exposed, else the reason it is not."""
    if 'expose' in settings:
        return None if settings['expose'] else 'not exposed: annotation %sexpose is "false"' % prefix
    if options.get('expose_by_default', True) is False:
        return 'not exposed: expose_by_default is false and annotation %sexpose is not "true"' % prefix
    return None


def service_candidates(service, options, warnings=None, address=None):
    """The exposable ports of one slim service, and the exclusions with reasons.

    Returns (candidates, excluded); a candidate is one TCP service port with its nodePort and
    the service's parsed settings. Warnings (settings ignored) are appended to ``warnings``.
    address: the Service's own external address (a LoadBalancer Service Portico implements):
    its frontends bind that address on its own ports.
    """
    warnings = [] if warnings is None else warnings
    service_id = _service_id(service)
    prefix = options.get('annotation_prefix') or DEFAULT_PREFIX
    try:
        namespace_name(service.get('namespace'))
        service_name(service.get('name'))
        settings, notes = parse_settings(service.get('annotations') or {}, prefix)
    except InvalidValue as exc:
        return [], [_entry(service_id, None, 'invalid: %s' % exc)]
    warnings.extend(_entry(service_id, None, note) for note in notes)
    # a LoadBalancer Service of Portico's class asked for it: only annotation expose=false says no
    reason = _expose(settings, options if address is None else dict(options, expose_by_default=True), prefix)
    if reason:
        return [], [_entry(service_id, None, reason)]
    if address is not None:
        for key in ('frontend-port', 'bind-address'):
            if key in settings:
                warnings.append(_entry(service_id, None, 'annotation %s%s ignored: the service has its own address %s'
                                       % (prefix, key, address)))
                settings = dict((k, v) for k, v in settings.items() if k != key)
    elif settings.get('bind-address') and _in_pool(settings['bind-address'], options):
        return [], [_entry(service_id, None, 'annotation %sbind-address: %s is in address pool %s, whose addresses '
                           'only LoadBalancer services Portico implements get'
                           % (prefix, settings['bind-address'], _in_pool(settings['bind-address'], options)))]
    frontend_port_source = options.get('frontend_port') or 'service_port'
    selected = settings.get('ports')
    candidates, excluded, seen = [], [], set()
    for port in service.get('ports') or []:
        label = _port_label(port)
        try:
            name = port_name(port.get('name'))
            number = port_number(port.get('port'), 'port')
        except InvalidValue as exc:
            excluded.append(_entry(service_id, label, 'invalid: %s' % exc))
            continue
        # the API server refuses a second port of the same number and protocol; a snapshot may not
        if (number, port.get('protocol')) in seen:
            excluded.append(_entry(service_id, label, 'invalid: port %d/%s is listed twice' % (number, port.get('protocol'))))
            continue
        seen.add((number, port.get('protocol')))
        if port.get('protocol') != 'TCP':
            excluded.append(_entry(service_id, label, '%s ports cannot be balanced by HAProxy'
                                   % (port.get('protocol'),)))
            continue
        if selected is not None and number not in selected and (not name or name not in selected):
            excluded.append(_entry(service_id, label, 'not listed in annotation %sports' % prefix))
            continue
        if port.get('node_port') is None:
            excluded.append(_entry(service_id, label, 'no nodePort allocated'))
            continue
        try:
            node_port = port_number(port.get('node_port'), 'nodePort')
        except InvalidValue as exc:
            excluded.append(_entry(service_id, label, 'invalid: %s' % exc))
            continue
        candidates.append({
            'service': service_id,
            'namespace': service['namespace'],
            'service_name': service['name'],
            'port_name': name,
            'service_port': number,
            'node_port': node_port,
            'frontend_port': node_port if frontend_port_source == 'node_port' and address is None else number,
            'address': address,
            'created': service['created'] if isinstance(service.get('created'), str) and service['created'] else _NO_TIME,
            'traffic_policy': service.get('external_traffic_policy') or 'Cluster',
            'health_check_node_port': service.get('health_check_node_port'),
            'settings': settings,
        })
    wanted = settings.get('frontend-port')
    if isinstance(wanted, int) and len(candidates) > 1:
        return [], [_entry(service_id, None, 'invalid: annotation %sfrontend-port is one port but %d service '
                           'ports are exposed; use name=port,name2=port' % (prefix, len(candidates)))]
    for candidate in candidates:
        if isinstance(wanted, int):
            candidate['frontend_port'] = wanted
        elif isinstance(wanted, dict):
            for key in (candidate['port_name'], candidate['service_port']):
                if key in wanted:
                    candidate['frontend_port'] = wanted[key]
    if selected is not None or isinstance(wanted, dict):
        known = set(p.get('name') for p in service.get('ports') or []) | set(p.get('port') for p in service.get('ports') or [])
        for key in sorted(set(selected or []) | set(wanted if isinstance(wanted, dict) else []), key=str):
            if key not in known:
                # digits only are a port number; a port whose name is digits is meant by its number
                named = [p.get('port') for p in service.get('ports') or [] if p.get('name') == str(key)]
                hint = (' (digits are a port number; its port named "%s" is port %s)' % (key, named[0])
                        if named else '')
                warnings.append(_entry(service_id, None, 'annotation names port %s, which the service does not have%s'
                                       % (key, hint)))
    if not candidates and not excluded:
        excluded.append(_entry(service_id, None, 'no ports'))
    return candidates, excluded


def _address_order(address):
    """Frontends of the shared bind first, then by address (IPv4 before IPv6), numerically."""
    if address is None:
        return (0, 0, 0)
    parsed = ipaddress.ip_address(address)
    return (1, parsed.version, int(parsed))


def _in_pool(address, options):
    """The name of the address pool holding address, or None."""
    return _addresses.pool_of(ipaddress.ip_address(address), options.get('address_pools') or [])


def _kind(candidate):
    """How a frontend port is shared: 'exclusive', or by host name: 'host' (HTTP Host header),
    'sni' (TLS passthrough, by SNI), 'tls-host' and 'tls-sni' (TLS terminated here)."""
    settings = candidate.get('settings') or {}
    if not settings.get('hosts'):
        return 'exclusive'
    kind = 'host' if settings.get('mode') == 'http' else 'sni'
    return 'tls-' + kind if candidate.get('tls') else kind


def _allocation_start(candidate, low, high):
    key = '%s/%d' % (candidate['service'], candidate['service_port'])
    return low + int(hashlib.sha256(key.encode('utf-8')).hexdigest()[:12], 16) % (high - low + 1)


def _where(candidate, port):
    """A frontend's place: (its own address or None for the shared bind, port)."""
    return candidate.get('address'), port


def _reserved(options):
    """{port: why no service gets it}: the reserved ports, and the load balancers' metrics ports."""
    reserved = dict((port, 'frontend port %d is reserved by the base configuration' % port)
                    for port in options.get('reserved_ports') or [])
    for port in options.get('metrics_ports') or []:
        reserved.setdefault(port, 'frontend port %d is the metrics port of the load balancers '
                                  '(haproxy_sync_metrics_port)' % port)
    return reserved


def _claim_problem(claims, port, candidate, kind, reserved):
    """(why candidate cannot have port, whether another port would do), or (None, False)."""
    if port in reserved:
        return reserved[port], True
    claim = claims.get(_where(candidate, port))
    if claim is None:
        return None, False
    on = ' of address %s' % candidate['address'] if candidate.get('address') else ''
    if kind == 'exclusive' or claim['kind'] != kind:
        return 'frontend port %d%s is already taken by the older service %s' % (port, on, claim['owner']), True
    for host in candidate['settings']['hosts']:
        if host in claim['hosts']:
            # a host name belongs to one service whatever the port: moving it would not help
            return 'host %s on frontend port %d%s is already routed to the older service %s' % (
                host, port, on, claim['hosts'][host]), False
    return None, False


def assign_frontend_ports(candidates, options=None, warnings=None, claims=None, movable_ports=True):
    """Give each frontend port to its oldest claimant.

    Services with host names of the same kind share a port (unless a host is claimed twice).
    With port_conflict "allocate" a younger service whose port is taken gets a free port of
    allocate_range, chosen from a hash of its name and port, so it is stable across runs;
    otherwise it is excluded with the winner named. claims (port -> claim) carries the ports
    given out by an earlier call; movable_ports false never allocates.
    """
    options = options or {}
    warnings = [] if warnings is None else warnings
    reserved = _reserved(options)
    low, high = allocate_range(options.get('allocate_range'))
    allocate = options.get('port_conflict') == 'allocate' and movable_ports
    # Ports some service asks for (redirects included) are never handed out to another one.
    wanted = set(_where(c, c['frontend_port']) for c in candidates)
    wanted.update(_where(c, c['settings']['tls-redirect-port']) for c in candidates
                  if 'tls-redirect-port' in c['settings'])
    claims = {} if claims is None else claims
    winners, excluded = [], []
    order = sorted(candidates, key=lambda c: (c['created'], c['namespace'], c['service_name'], c['service_port']))
    for candidate in order:
        kind = _kind(candidate)
        port = candidate['frontend_port']
        problem, movable = _claim_problem(claims, port, candidate, kind, reserved)
        # a Service on its own address keeps its own ports: it is never moved
        if problem and allocate and movable and candidate.get('address') is None:
            start = _allocation_start(candidate, low, high)
            size = high - low + 1
            for step in range(size):
                free = low + (start - low + step) % size
                if (None, free) not in claims and free not in reserved and (None, free) not in wanted:
                    warnings.append(_entry(candidate['service'], _tcp_port(candidate),
                                           '%s; allocated frontend port %d' % (problem, free)))
                    port, problem = free, None
                    candidate = dict(candidate, frontend_port=free)
                    break
            else:
                problem += '; no free port left in allocate_range %d-%d' % (low, high)
        if problem:
            excluded.append(_entry(candidate['service'], _tcp_port(candidate), problem))
            continue
        claim = claims.setdefault(_where(candidate, port), {'kind': kind, 'owner': candidate['service'], 'hosts': {}})
        for host in (candidate['settings'].get('hosts') or []) if kind != 'exclusive' else []:
            claim['hosts'][host] = candidate['service']
        winners.append(candidate)
    return winners, excluded


def _with_certificates(candidates, secrets, excluded, warnings, prefix):
    """Candidates with the facts of their TLS Secret; a service whose Secret is unusable is excluded."""
    kept, failed = [], set()
    for candidate in candidates:
        name = candidate['settings'].get('tls-secret')
        if name is None:
            kept.append(candidate)
            continue
        found = secrets.get((candidate['namespace'], name)) or {
            'error': 'Secret %s/%s not found' % (candidate['namespace'], name)}
        if 'error' in found:
            if candidate['service'] not in failed:
                failed.add(candidate['service'])
                excluded.append(_entry(candidate['service'], None, 'annotation %stls-secret: %s'
                                       % (prefix, found['error'])))
            continue
        candidate = dict(candidate, tls=found)
        port = _tcp_port(candidate)
        if found.get('expired'):
            warnings.append(_entry(candidate['service'], port, 'the certificate of Secret %s expired on %s'
                                   % (found['secret'], found['not_after'])))
        elif found.get('not_yet_valid'):
            warnings.append(_entry(candidate['service'], port, 'the certificate of Secret %s is not valid before %s: '
                                   'clients refuse it until then' % (found['secret'], found.get('not_before'))))
        for host in candidate['settings'].get('hosts') or []:
            if not name_matches(host, found.get('names') or []):
                warnings.append(_entry(candidate['service'], port, 'the certificate of Secret %s does not name '
                                       'host %s' % (found['secret'], host)))
        kept.append(candidate)
    return kept


def _serves(names, host):
    """How a certificate with these names matches host for HAProxy's SNI choice: 2 exact, 1 wildcard, 0 not."""
    if host in names:
        return 2
    return 1 if name_matches(host, [n for n in names if n.startswith('*.')]) else 0


def _competing_host(claimant, owner):
    """A host of owner's for which HAProxy could pick claimant's certificate.

    HAProxy prefers an exact name to a wildcard only between certificates of one key type: it
    takes the first ECDSA and the first RSA match of either kind, then ECDSA if the client can. So
    any match competes when the two keys differ in type, and an equal or better one when not.
    """
    other_type = claimant['tls'].get('key_type') != owner['tls'].get('key_type')
    for host in owner['settings']['hosts']:
        mine = _serves(claimant['tls']['names'], host)
        if mine and (other_type or mine >= _serves(owner['tls']['names'], host)):
            return host
    return None


def _certificate_conflicts(winners, excluded, prefix):
    """Leave out a terminated service whose certificate could be served for another service's host.

    Every certificate of a shared port is on one bind line and HAProxy picks by SNI among all of
    them, so a younger tenant's certificate naming an older tenant's host must not get there.
    """
    kept, terminated = [], {}
    for candidate in winners:  # oldest first
        if _kind(candidate) not in ('tls-host', 'tls-sni'):
            kept.append(candidate)
            continue
        problem = None
        where = _where(candidate, candidate['frontend_port'])
        files = set(other['tls']['file'] for other in terminated.get(where, []))
        if candidate['tls']['file'] not in files and len(files) >= MAX_BIND_CERTIFICATES:
            problem = ('annotation %stls-secret: port %d already serves %d certificates, as many as one HAProxy '
                       'bind line takes' % (prefix, candidate['frontend_port'], MAX_BIND_CERTIFICATES))
        for other in terminated.setdefault(where, []) if problem is None else []:
            if other['tls']['file'] == candidate['tls']['file']:
                continue  # one certificate, whichever service it is chosen for
            host = _competing_host(candidate, other)
            if host:
                problem = ('annotation %stls-secret: the certificate of Secret %s also names host %s, which port %d '
                           'routes to the older service %s'
                           % (prefix, candidate['tls']['secret'], host, candidate['frontend_port'], other['service']))
            else:
                host = _competing_host(other, candidate)
                if host:
                    problem = ('annotation %stls-secret: for host %s on port %d HAProxy would serve the certificate '
                               'of the older service %s' % (prefix, host, candidate['frontend_port'], other['service']))
            if problem:
                break
        if problem:
            excluded.append(_entry(candidate['service'], _tcp_port(candidate), problem))
            continue
        terminated[where].append(candidate)
        kept.append(candidate)
    return kept


def _redirects(winners, options, warnings, claims):
    """Plain-HTTP frontends (or Host routes) that send TLS services' clients to HTTPS.

    A redirect never moves to another port: one that cannot have its port is dropped with a warning.
    """
    wanted = []
    for winner in winners:
        port = winner['settings'].get('tls-redirect-port')
        if port and winner.get('tls'):
            settings = dict((k, v) for k, v in winner['settings'].items() if k in ('hosts', 'bind-address'))
            settings['mode'] = 'http'
            wanted.append(dict(winner, tls=None, settings=settings, frontend_port=port,
                               redirect_port=winner['frontend_port']))
    redirects, dropped = assign_frontend_ports(wanted, options, warnings, claims, movable_ports=False)
    for entry in dropped:
        # a redirect yields to any service that wants its port, older or younger
        reason = entry['reason'].replace('by the older service', 'by the service')
        warnings.append(dict(entry, reason='no redirect to HTTPS: %s' % reason))
    return redirects


def _backend_nodes(name, candidate, eligible_names, local, subsetter):
    nodes = serving_nodes(candidate, local)
    if subsetter.size:
        picked = subsetter.pick(name, eligible_names if nodes == 'all' else nodes)
        return 'all' if picked is eligible_names else picked
    return nodes


def _check(candidate, options, warnings, prefix):
    """The default health check, adjusted by the check annotations."""
    check = health_check(candidate, options)
    settings = candidate['settings']
    if 'check' in settings:
        if check.get('port') is not None:
            warnings.append(_entry(candidate['service'], _tcp_port(candidate),
                                   'annotation %scheck ignored: checked on the kube-proxy health port %d'
                                   % (prefix, check['port'])))
        elif settings['check'] == 'http':
            check = {'type': 'http', 'path': settings.get('check-path', '/')}
            if 'check-method' in settings:
                check['method'] = settings['check-method']
            if 'check-status' in settings:
                check['status'] = settings['check-status']
    for key, name in (('check-interval', 'interval'), ('check-rise', 'rise'), ('check-fall', 'fall')):
        if key in settings:
            check[name] = settings[key]
    return check


def _route_order(route):
    # Exact names first, then wildcards, longest suffix first: the most specific match wins.
    return (route['match'] == 'end', -len(route['value']), route['value'])


def _frontend_settings(settings):
    return {
        'bind_address': settings.get('bind-address'),
        'accept_proxy': settings.get('accept-proxy', False),
        'maxconn': settings.get('maxconn'),
        'timeout_client': settings.get('timeout-client'),
    }


def _certificates(members):
    """The certificate files of a frontend, the oldest service's first (HAProxy's default)."""
    files = []
    for member in members:
        if member.get('tls') and member['tls']['file'] not in files:
            files.append(member['tls']['file'])
    return files


def _frontends(winners, warnings):
    """One frontend per port: a single backend or redirect, or routes by Host header or SNI."""
    by_place = {}
    for candidate in winners:
        by_place.setdefault(_where(candidate, candidate['frontend_port']), []).append(candidate)
    frontends = []
    for (address, port), members in by_place.items():
        first = members[0]
        kind = _kind(first)
        name = section_name(first['namespace'], first['service_name'], first['service_port'])
        # one service per port of its own address: its section name keeps the frontend's name unique
        place = '%d' % port if address is None else name
        frontend = {'name': name, 'port': port, 'mode': first['settings'].get('mode', 'tcp'),
                    'backend': name, 'service': first['service'], 'service_port': first['service_port'],
                    'route_by': None, 'routes': [], 'redirect_port': None,
                    'tls': {'certificates': _certificates(members)} if first.get('tls') else None}
        if first.get('redirect_port'):
            frontend.update({'name': 'redirect.%s' % place, 'backend': None, 'redirect_port': first['redirect_port']})
        frontend.update(_frontend_settings(first['settings']))
        if address is not None:
            frontend.update({'bind_address': address, 'address': address})
        if kind != 'exclusive':
            frontend.update({'name': '%s.%s' % ('hosts' if kind.endswith('host') else 'sni', place), 'backend': None,
                             'service': ', '.join(m['service'] for m in members), 'service_port': None,
                             'route_by': kind.replace('tls-', ''), 'redirect_port': None})
            for member in members:
                backend = section_name(member['namespace'], member['service_name'], member['service_port'])
                if member['settings'].get('host-default') and not member.get('redirect_port'):
                    if frontend['backend'] is None:
                        frontend['backend'] = backend
                    else:
                        warnings.append(_entry(member['service'], _tcp_port(member),
                                               'annotation host-default ignored: port %d already sends other '
                                               'hosts to %s, of an older service' % (port, frontend['backend'])))
                for host in member['settings']['hosts']:
                    wildcard = host.startswith('*.')
                    route = {'host': host, 'match': 'end' if wildcard else 'str',
                             'value': host[1:] if wildcard else host, 'service': member['service'],
                             'backend': None if member.get('redirect_port') else backend,
                             'redirect_port': member.get('redirect_port')}
                    frontend['routes'].append(route)
                if member is not first and _frontend_settings(member['settings']) != _frontend_settings(first['settings']):
                    warnings.append(_entry(member['service'], _tcp_port(member),
                                           'frontend settings (bind-address, accept-proxy, maxconn, timeout-client) '
                                           'of the shared port %d are those of the older service %s'
                                           % (port, first['service'])))
            frontend['routes'].sort(key=_route_order)
        frontends.append(frontend)
    frontends.sort(key=lambda f: (f['port'],) + _address_order(f.get('address')))
    return frontends


def build_model(nodes, services, options=None, source=None, endpoint_slices=None, secrets=None):
    """The routing model from slim nodes, candidate services and slices (see _cluster).

    secrets: {(namespace, name): facts of _tls.read_tls_secret, or {'error': reason}} for the
    Secrets that tls-secret annotations name; a Secret left out counts as not found.
    Every value the model holds has passed the renderer's guard: a service or node with a value
    that fits no slot of haproxy.cfg is left out with the reason, and the others are routed.
    """
    options = dict(options or {})
    options['address_pools'] = _addresses.address_pools(options.get('address_pools'))
    options['load_balancer_class'] = _addresses.load_balancer_class(options.get('load_balancer_class'))
    refused = {'services': {}, 'nodes': {}}
    while True:
        model = _build(nodes, services, options, source, endpoint_slices, secrets, refused)
        found = refusals(model)
        new = dict((key, dict((k, v) for k, v in found[key].items() if k not in refused[key])) for key in found)
        # Each round leaves out one more service or node, so this ends. A refusal naming none that
        # can be left out stays in the model: rendering it then fails with the reason, writing nothing.
        if not new['services'] and not new['nodes']:
            return model
        for key in ('services', 'nodes'):
            refused[key].update(new[key])


def _settings(service, prefix):
    """A service's parsed annotations, or None when one is invalid (service_candidates says which)."""
    try:
        return parse_settings(service.get('annotations') or {}, prefix)[0]
    except InvalidValue:
        return None


def _allocate(services, counts, options, warnings, prefix):
    """The addresses of the LoadBalancer Services Portico implements, and why the others got none.

    A Service with an invalid annotation keeps the address it holds (its frontends are left out,
    with the reason): a typo must not give its address away. Only annotation expose=false lets it go.
    """
    implemented, settings = [], {}
    for service in services:
        service_id = _service_id(service)
        if counts[service_id] == 1 and _addresses.implements(service, options):
            settings[service_id] = _settings(service, prefix)
            if (settings[service_id] or {}).get('expose') is not False:
                implemented.append(service)
    assigned, not_given, notes = _addresses.allocate(implemented, options['address_pools'],
                                                     lambda s: settings[_service_id(s)], prefix)
    warnings.extend(_entry(service_id, None, note) for service_id, note in notes)
    return assigned, not_given


def _status(services, counts, assigned, not_given, winners, excluded, options, prefix):
    """What to write on each Service's status.loadBalancer, and the Event that says it."""
    served, not_served = {}, {}
    for winner in winners:
        if winner.get('address'):
            served.setdefault(winner['service'], []).append(winner['service_port'])
    for entry in excluded:
        not_served.setdefault(entry['service'], entry['reason'])
    entries = []
    for service in services:
        service_id = _service_id(service)
        if counts[service_id] > 1:
            continue
        given = assigned.get(service_id)
        if given and service_id in served:
            entry = _addresses.status_entry(service, given['address'], given['pool'], served[service_id])
        elif given:
            entry = _addresses.status_entry(service, given['address'], given['pool'], keep=True,
                                            reason=not_served.get(service_id, 'none of its ports is served'))
        elif service_id in not_given:
            entry = _addresses.status_entry(service, reason=not_given[service_id])
        elif _addresses.implements(service, options):
            entry = _addresses.status_entry(service, reason='annotation %sexpose is "false"' % prefix)
        else:
            entry = _addresses.status_entry(service)
        if entry is not None:
            entries.append(entry)
    return sorted(entries, key=lambda e: e['service'])


def _without_refused(eligible, excluded_nodes, draining, refused):
    """Leave out the nodes the renderer's guard refused, with its reason."""
    if not refused:
        return eligible, excluded_nodes, draining
    excluded_nodes = sorted(excluded_nodes + [
        {'name': node['name'], 'reason': 'refused by the configuration guard: %s' % refused[node['name']]}
        for node in eligible if node['name'] in refused], key=lambda n: (n['name'], n['reason']))
    return ([node for node in eligible if node['name'] not in refused], excluded_nodes,
            [node for node in draining if node['name'] not in refused])


def _build(nodes, services, options, source, endpoint_slices, secrets, refused):
    prefix = options.get('annotation_prefix') or DEFAULT_PREFIX
    eligible, excluded_nodes = eligible_nodes(nodes, options)
    draining = draining_nodes(options.get('drain_state'), eligible, options.get('now') or 0,
                              options.get('drain_seconds') or 0)
    eligible, excluded_nodes, draining = _without_refused(eligible, excluded_nodes, draining, refused['nodes'])
    eligible_names = [node['name'] for node in eligible]
    local = local_nodes(ready_nodes_by_service(endpoint_slices or []), eligible_names)
    subsetter = Subsetter(options.get('backend_subset_size') or 0, eligible_names)
    candidates, excluded_services, warnings, counts = [], [], [], {}
    for service in services:
        counts[_service_id(service)] = counts.get(_service_id(service), 0) + 1
    addresses, not_given = _allocate(services, counts, options, warnings, prefix)
    for service in services:
        service_id = _service_id(service)
        # Listed twice (only a hand-made snapshot can): which copy is right is unknowable.
        if counts[service_id] > 1:
            excluded_services.append(_entry(service_id, None, 'listed more than once'))
            continue
        if service_id in refused['services']:
            excluded_services.append(_entry(service_id, None, 'refused by the configuration guard: %s'
                                            % refused['services'][service_id]))
            continue
        if service_id in not_given:
            excluded_services.append(_entry(service_id, None, 'no address: %s' % not_given[service_id]))
            continue
        found, excluded = service_candidates(service, options, warnings,
                                             (addresses.get(service_id) or {}).get('address'))
        candidates.extend(found)
        excluded_services.extend(excluded)
    candidates = _with_certificates(candidates, secrets or {}, excluded_services, warnings, prefix)
    claims = {}
    winners, conflicts = assign_frontend_ports(candidates, options, warnings, claims)
    excluded_services.extend(conflicts)
    winners = _certificate_conflicts(winners, excluded_services, prefix)
    redirects = _redirects(winners, options, warnings, claims)

    backends, by_service = [], {}
    for candidate in winners:
        name = section_name(candidate['namespace'], candidate['service_name'], candidate['service_port'])
        settings = candidate['settings']
        backends.append({
            'name': name,
            'service': candidate['service'],
            'namespace': candidate['namespace'],
            'service_name': candidate['service_name'],
            'port_name': candidate['port_name'],
            'service_port': candidate['service_port'],
            'node_port': candidate['node_port'],
            'mode': settings.get('mode', 'tcp'),
            'balance': settings.get('balance', 'roundrobin'),
            'traffic_policy': candidate['traffic_policy'],
            'check': _check(candidate, options, warnings, prefix),
            'proxy_protocol': settings.get('proxy-protocol', 'none'),
            'timeout_connect': settings.get('timeout-connect'),
            'timeout_server': settings.get('timeout-server'),
            'timeout_tunnel': settings.get('timeout-tunnel'),
            'nodes': _backend_nodes(name, candidate, eligible_names, local, subsetter),
        })
        by_service.setdefault(candidate['service'], []).append(name)
    frontends = _frontends(winners + redirects, warnings)
    load_balancers = _status(services, counts, addresses, not_given, winners, excluded_services, options, prefix)
    used = set(f for frontend in frontends for f in (frontend['tls'] or {}).get('certificates', []))
    certificates = sorted(dict((c['tls']['file'], c['tls']) for c in winners if c.get('tls')
                               and c['tls']['file'] in used).values(), key=lambda c: c['file'])
    backends.sort(key=lambda b: b['name'])
    excluded_services.sort(key=lambda e: (e['service'], e['port'] or '', e['reason']))
    warnings.sort(key=lambda e: (e['service'], e['port'] or '', e['reason']))
    return {
        'source': source or {},
        'nodes': eligible,
        'excluded_nodes': excluded_nodes,
        'draining_nodes': draining,
        'frontends': frontends,
        'backends': backends,
        'services': [{'service': s, 'backends': sorted(b)} for s, b in sorted(by_service.items())],
        'excluded_services': excluded_services,
        'warnings': warnings,
        'certificates': certificates,
        'load_balancers': load_balancers,
        'summary': {
            'nodes': len(eligible),
            'excluded_nodes': len(excluded_nodes),
            'draining_nodes': len(draining),
            'services': len(by_service),
            'frontends': len(frontends),
            'backends': len(backends),
            'excluded_services': len(excluded_services),
            'warnings': len(warnings),
            'certificates': len(certificates),
            'load_balancer_addresses': sum(1 for entry in load_balancers if entry['address']),
            'backends_without_nodes': sum(1 for b in backends if b['nodes'] == []),
        },
    }
