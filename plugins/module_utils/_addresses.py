# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""External addresses of the LoadBalancer Services Portico implements: pools, allocation, status.

Private to this collection. Pure functions on plain dicts. The cluster is the record: the
address a Service holds is the one in its status.loadBalancer.ingress, so a new controller,
or an AWX job with no local state, allocates nothing new.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue, _show, ip_address

DEFAULT_CLASS = 'portico.io/haproxy'
# The field manager of Portico's status writes: the event source tells its own writes by it.
FIELD_MANAGER = 'portico'
# A Kubernetes qualified name: an optional DNS subdomain prefix and "/", then a name part.
_QUALIFIED = re.compile(r'\A(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?'
                        r'[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z')
_POOL_NAME = re.compile(r'\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z')


def load_balancer_class(value):
    """The class Portico implements: a qualified name, as spec.loadBalancerClass takes it."""
    if value is None or value == '':
        return DEFAULT_CLASS
    if not isinstance(value, str) or len(value) > 316 or not _QUALIFIED.match(value) or '/' not in value:
        raise InvalidValue('load_balancer_class %s is not a qualified name with a prefix (like %s)'
                           % (_show(value), DEFAULT_CLASS))
    return value


def _pool_address(text, pool):
    try:
        address = ipaddress.ip_address(ip_address(text, 'address'))
    except InvalidValue as exc:
        raise InvalidValue('address pool %s: %s' % (pool, exc))
    if address.is_multicast or address.is_unspecified or address.is_link_local:
        raise InvalidValue('address pool %s: %s is a multicast, unspecified or link-local address, which a '
                           'Service cannot be reached on' % (pool, address))
    return address


def _range(entry, pool):
    """(first, last) addresses of one pool entry: a CIDR, "first-last", or one address."""
    if not isinstance(entry, str) or not entry.strip():
        raise InvalidValue('address pool %s: entry %s is not a CIDR, a range or an address' % (pool, _show(entry)))
    entry = entry.strip()
    if '/' in entry:
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise InvalidValue('address pool %s: %s is not a CIDR (%s)' % (pool, _show(entry), exc))
        first, last = network[0], network[-1]
        # a network's own address and its broadcast address are left out, as routers treat them apart
        if network.version == 4 and network.prefixlen < 31:
            first, last = first + 1, last - 1
        _pool_address(str(first), pool)
        _pool_address(str(last), pool)
        return first, last
    low, sep, high = entry.partition('-')
    first = _pool_address(low.strip(), pool)
    last = _pool_address(high.strip(), pool) if sep else first
    if first.version != last.version or last < first:
        raise InvalidValue('address pool %s: range %s must run from a lower to a higher address of one family'
                           % (pool, _show(entry)))
    return first, last


def address_pools(value):
    """The operator's address_pools as [{'name', 'ranges': [(first, last)]}], checked.

    Each pool is {name: ..., addresses: [CIDR, "first-last" or address, ...]}; the first pool
    is the default. Pools may not overlap: an address belongs to one pool.
    """
    if value is None or value == '' or value == []:
        return []
    if not isinstance(value, list):
        raise InvalidValue('address_pools must be a list of {name: ..., addresses: [...]}')
    pools, spans = [], []
    for index, pool in enumerate(value):
        if not isinstance(pool, dict) or set(pool) - set(('name', 'addresses')):
            raise InvalidValue('address_pools[%d] must be {name: ..., addresses: [...]}, with no other keys' % index)
        name = pool.get('name')
        if not isinstance(name, str) or not _POOL_NAME.match(name):
            raise InvalidValue('address_pools[%d]: name %s is not a DNS-1123 label' % (index, _show(name)))
        if name in [p['name'] for p in pools]:
            raise InvalidValue('address pool %s is listed twice' % name)
        entries = pool.get('addresses')
        if not isinstance(entries, list) or not entries:
            raise InvalidValue('address pool %s: addresses must be a non-empty list' % name)
        ranges = [_range(entry, name) for entry in entries]
        for first, last in ranges:
            for other, other_first, other_last in spans:
                if first.version == other_first.version and first <= other_last and other_first <= last:
                    raise InvalidValue('address pool %s: %s-%s overlaps pool %s (%s-%s); an address belongs to one pool'
                                       % (name, first, last, other, other_first, other_last))
            spans.append((name, first, last))
        pools.append({'name': name, 'ranges': ranges})
    return pools


def pool_of(address, pools):
    """The name of the pool holding address (an ipaddress object), or None."""
    for pool in pools:
        for first, last in pool['ranges']:
            if first.version == address.version and first <= address <= last:
                return pool['name']
    return None


def implements(service, options):
    """Whether Portico gives this Service an address: its class, or no class when Portico is the default."""
    if service.get('type') != 'LoadBalancer':
        return False
    wanted = service.get('load_balancer_class')
    if wanted is None:
        return bool(options.get('default_load_balancer'))
    return wanted == load_balancer_class(options.get('load_balancer_class'))


def _service_id(service):
    return '%s/%s' % (service.get('namespace'), service.get('name'))


def _parsed(text, what):
    """An ipaddress object from a cluster value, or InvalidValue naming the field."""
    return ipaddress.ip_address(ip_address(text, what))


def _request(service, settings, pools, prefix):
    """('address', ip) or ('pool', name) the Service asks for, and the warnings of what it ignores."""
    notes = []
    asked = [(what, value) for what, value in (
        ('spec.loadBalancerIP', service.get('load_balancer_ip') or None),
        ('annotation %saddress' % prefix, settings.get('address')),
        ('annotation %saddress-pool' % prefix, settings.get('address-pool'))) if value]
    for what, dummy in asked[1:]:
        notes.append('%s ignored: %s is set' % (what, asked[0][0]))
    if not asked:
        return ('pool', pools[0]['name'], 'the default pool'), notes
    what, value = asked[0]
    if what.endswith('address-pool'):
        if value not in [p['name'] for p in pools]:
            raise InvalidValue('%s names pool %s, which is not configured (pools: %s)'
                               % (what, value, ', '.join(p['name'] for p in pools)))
        return ('pool', value, 'pool %s' % value), notes
    address = _parsed(value, what)
    if pool_of(address, pools) is None:
        raise InvalidValue('%s %s is in no address pool (pools: %s)'
                           % (what, address, ', '.join(p['name'] for p in pools)))
    return ('address', address, what), notes


def _ports(service):
    return set((p.get('port'), p.get('protocol') or 'TCP') for p in service.get('ports') or [])


def _held(service, pools, request):
    """The address of the Service's status that it keeps, if that satisfies its request."""
    for entry in service.get('ingress') or []:
        try:
            address = _parsed(entry.get('ip'), 'status ip')
        except InvalidValue:
            continue
        pool = pool_of(address, pools)
        if pool is None:
            continue
        if request[0] == 'address' and address != request[1]:
            continue
        if request[0] == 'pool' and request[2] != 'the default pool' and pool != request[1]:
            continue
        return address
    return None


class _Claims:
    """Who holds each address: [(service id, sharing key, ports)]."""

    def __init__(self):
        self.holders = {}

    def problem(self, address, service_id, key, ports):
        """Why the Service cannot have address, or None."""
        for holder, holder_key, holder_ports in self.holders.get(address, []):
            if not key or holder_key != key:
                return 'address %s is taken by the older service %s' % (address, holder)
            clash = sorted(ports & holder_ports, key=str)
            if clash:
                return ('address %s is shared (key %s) with the older service %s, which also uses port %s'
                        % (address, key, holder, '%s/%s' % clash[0]))
        return None

    def take(self, address, service_id, key, ports):
        self.holders.setdefault(address, []).append((service_id, key, ports))


def _family_order(service, pools, pool_name):
    """The pool's ranges, those of the Service's first IP family first."""
    pool = [p for p in pools if p['name'] == pool_name][0]
    families = service.get('ip_families') or []
    first = 6 if families and families[0] == 'IPv6' else 4
    return sorted(pool['ranges'], key=lambda r: r[0].version != first)


def _free(service, pools, pool_name, claims, key, ports, service_id):
    """A new address for the Service: one it may share under its key, else the lowest free one."""
    if key:
        for address in sorted(claims.holders, key=lambda a: (a.version, a)):
            if pool_of(address, pools) == pool_name and claims.problem(address, service_id, key, ports) is None:
                return address
    for first, last in _family_order(service, pools, pool_name):
        address = first
        while address <= last:
            if address not in claims.holders:
                return address
            address += 1
    return None


def allocate(services, pools, settings_of, prefix):
    """{service id: {'address', 'pool', 'how'}} and {service id: reason} for the implemented Services.

    services: the slim Services Portico implements; settings_of(service) their parsed
    annotations. The oldest Service keeps an address two ask for, unless both carry the same
    allow-shared-ip key and their ports do not clash; a new address is the lowest free one of
    the pool asked for (or shared under the key), so the result does not depend on input order.
    """
    order = sorted(services, key=lambda s: (s.get('created') or '9999', s.get('namespace'), s.get('name')))
    assigned, refused, warnings, pending = {}, {}, [], []
    claims = _Claims()
    if not pools:
        for service in order:
            refused[_service_id(service)] = 'no address pool is configured (option address_pools)'
        return assigned, refused, warnings
    for service in order:
        service_id = _service_id(service)
        settings = settings_of(service)
        try:
            request, notes = _request(service, settings, pools, prefix)
        except InvalidValue as exc:
            refused[service_id] = str(exc)
            continue
        warnings.extend((service_id, note) for note in notes)
        key, ports = settings.get('allow-shared-ip'), _ports(service)
        held = _held(service, pools, request)
        wanted = request[1] if request[0] == 'address' else held
        if wanted is None:
            pending.append((service, request, key, ports))
            continue
        problem = claims.problem(wanted, service_id, key, ports)
        if problem is None:
            claims.take(wanted, service_id, key, ports)
            assigned[service_id] = {'address': str(wanted), 'pool': pool_of(wanted, pools),
                                    'how': 'held' if wanted == held else request[2]}
        elif request[0] == 'address':
            refused[service_id] = '%s: %s' % (request[2], problem)
        else:
            pending.append((service, request, key, ports))
    # New addresses only after every address already held or asked for by name is claimed.
    for service, request, key, ports in pending:
        service_id = _service_id(service)
        address = _free(service, pools, request[1], claims, key, ports, service_id)
        if address is None:
            refused[service_id] = 'address pool %s has no free address' % request[1]
            continue
        claims.take(address, service_id, key, ports)
        assigned[service_id] = {'address': str(address), 'pool': request[1], 'how': request[2]}
    return assigned, refused, warnings


def ingress(address, ports):
    """The status.loadBalancer.ingress Portico writes: the address, ipMode Proxy, the ports served."""
    if address is None:
        return []
    return [{'ip': address, 'ipMode': 'Proxy',
             'ports': [{'port': port, 'protocol': 'TCP'} for port in sorted(set(ports))]}]


def current_ips(service):
    return [entry.get('ip') or entry.get('hostname') for entry in service.get('ingress') or []]


def status_entry(service, address=None, pool=None, ports=(), reason=None):
    """What to write on one Service's status, and the Event that tells it; None when nothing is to say.

    address None: the Service gets no address (reason says why); its status is cleared if
    Portico wrote it.
    """
    desired = ingress(address, ports)
    current = service.get('ingress') or []
    ours = service.get('status_manager') == FIELD_MANAGER
    before = current_ips(service)
    if address is None and not (ours and current) and reason is None:
        return None
    key = None
    if address is None:
        # another controller's status is left alone
        desired = [] if ours else current
        if reason:
            # one news whether or not an address was let go with it, so the next run tells it no more
            key = 'refused: %s' % reason
            released = '; released %s' % ', '.join(before) if before and ours else ''
            event = ('AddressRefused', 'Warning', 'no address: %s%s' % (reason, released))
        else:
            event = ('AddressReleased', 'Normal', 'released %s' % ', '.join(before))
    elif before and before != [address]:
        event = ('AddressChanged', 'Normal', 'address changed from %s to %s (pool %s)'
                 % (', '.join(before), address, pool))
    elif before:
        event = None
    else:
        event = ('AddressAssigned', 'Normal', 'assigned %s from pool %s' % (address, pool))
    return {
        'service': _service_id(service),
        'namespace': service.get('namespace'),
        'name': service.get('name'),
        'uid': service.get('uid'),
        'resource_version': service.get('resource_version'),
        'address': address,
        'pool': pool,
        'current': current,
        'ingress': desired,
        'write': desired != current,
        'event': None if event is None else {'reason': event[0], 'type': event[1], 'note': event[2],
                                             'key': key or event[2]},
    }
