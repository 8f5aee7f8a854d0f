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
        # a network's own address (IPv6: its Subnet-Router anycast) and the IPv4 broadcast address are
        # left out, as routers treat them apart
        if network.prefixlen < network.max_prefixlen - 1:
            first = first + 1
            last = last - 1 if network.version == 4 else last
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


def unusable(address, first):
    """Why address, in a range that starts at first, can be no Service's, or None.

    A wide range may span special addresses; loopback is only for a range on loopback (a lab).
    """
    if address.is_multicast or address.is_unspecified or address.is_link_local or (
            address.version == 4 and (address.is_reserved or address == ipaddress.IPv4Address('255.255.255.255'))):
        return '%s is a multicast, unspecified, link-local or reserved address' % address
    if address.is_loopback != first.is_loopback:
        return '%s is a loopback address' % address
    return None


# what unusable() refuses, as networks: a wide range is walked past each of them at once
_SPECIAL = {4: [ipaddress.ip_network(n) for n in ('0.0.0.0/32', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3')],
            6: [ipaddress.ip_network(n) for n in ('::/127', 'fe80::/10', 'ff00::/8')]}


def after_unusable(address, first):
    """The next address worth trying after address, which unusable() refused; None when no later one
    of a range that starts at first can be any Service's."""
    if first.is_loopback and not address.is_loopback:
        return None
    end = int(address) + 1
    for network in _SPECIAL[address.version]:
        if address in network:
            end = int(network.broadcast_address) + 1
    if end >= 2 ** address.max_prefixlen:
        return None
    return ipaddress.ip_address(end) if address.version == 4 else ipaddress.IPv6Address(end)


def _range_of(address, pools):
    for pool in pools:
        for first, last in pool['ranges']:
            if first.version == address.version and first <= address <= last:
                return first
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
    first = _range_of(address, pools)
    if first is None:
        raise InvalidValue('%s %s is in no address pool (pools: %s)'
                           % (what, address, ', '.join(p['name'] for p in pools)))
    if unusable(address, first):
        raise InvalidValue('%s: %s' % (what, unusable(address, first)))
    return ('address', address, what), notes


def _ports(service):
    return set((p.get('port'), p.get('protocol') or 'TCP') for p in service.get('ports') or [])


def _held(service, pools, request):
    """The address of the status Portico wrote that the Service keeps, if it satisfies its request.

    Only Portico's own status counts: whoever else may write a Service's status does not choose its address.
    """
    if service.get('status_manager') != FIELD_MANAGER:
        return None
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
    """Who holds each address, and the addresses of each sharing key, as allocation goes."""

    def __init__(self, pools):
        self.pools = pools
        self.holders = {}
        self.by_key = {}
        # (pool, range index) -> the lowest address there that may still be free: claims only grow
        self.cursors = {}

    def problem(self, address, service, key, ports):
        """Why the Service cannot have address, or None."""
        for holder, holder_key, holder_ports in self.holders.get(address, []):
            # another namespace's Service is not named to this one's owner
            who = 'service %s' % holder if holder.split('/')[0] == service.get('namespace') else \
                'a service in another namespace'
            if not key or holder_key != key:
                return 'address %s is taken by %s' % (address, who)
            clash = sorted(ports & holder_ports, key=str)
            if clash:
                return 'address %s is shared (key %s) with %s, which also uses port %s' % (
                    address, key[1], who, '%s/%s' % clash[0])
        return None

    def take(self, address, service_id, key, ports):
        self.holders.setdefault(address, []).append((service_id, key, ports))
        if key:
            self.by_key.setdefault(key, set()).add(address)

    def lowest_free(self, pool_name, ranges):
        """The lowest address of these ranges of the pool that nobody holds, or None."""
        for index, (first, last) in ranges:
            address = self.cursors.get((pool_name, index), first)
            while address is not None and address <= last:
                if address in self.holders:
                    address += 1
                elif unusable(address, first):
                    address = after_unusable(address, first)
                else:
                    break
            if address is None:
                address = last + 1 if int(last) + 1 < 2 ** last.max_prefixlen else last
                self.cursors[(pool_name, index)] = address
                continue
            self.cursors[(pool_name, index)] = address
            if address <= last and not unusable(address, first) and address not in self.holders:
                return address
        return None


def _family_first(service):
    families = service.get('ip_families') or []
    return 6 if families and families[0] == 'IPv6' else 4


def _free(service, pools, pool_name, claims, key, ports):
    """A new address for the Service: one it may share under its key, else the lowest free one."""
    family = _family_first(service)
    if key:
        for address in sorted(claims.by_key.get(key, ()), key=lambda a: (a.version != family, a.version, a)):
            if pool_of(address, pools) == pool_name and claims.problem(address, service, key, ports) is None:
                return address
    pool = [p for p in pools if p['name'] == pool_name][0]
    ranges = sorted(enumerate(pool['ranges']), key=lambda r: r[1][0].version != family)
    return claims.lowest_free(pool_name, ranges)


def allocate(services, pools, settings_of, prefix):
    """{service id: {'address', 'pool', 'how'}}, {service id: reason} and warnings, for the implemented Services.

    services: the slim Services Portico implements; settings_of(service) their parsed annotations.
    An address Portico wrote to a Service's status stays that Service's (the oldest holder's, if two
    hold one); then addresses asked for by name go to the oldest that asks, unless held; then each
    Service still without one gets a new one, oldest first. Services of one namespace with the same
    allow-shared-ip key may share an address when their ports do not clash. A new address is the
    lowest free one of the pool asked for (or one shared under the key), so the result does not
    depend on input order.
    """
    order = sorted(services, key=lambda s: (s.get('created') if isinstance(s.get('created'), str) and s.get('created')
                                            else '9999', s.get('namespace'), s.get('name')))
    assigned, refused, warnings = {}, {}, []
    if not pools:
        for service in order:
            refused[_service_id(service)] = 'no address pool is configured (option address_pools)'
        return assigned, refused, warnings
    claims = _Claims(pools)
    asking, pending = [], []
    for service in order:
        service_id = _service_id(service)
        settings = settings_of(service) or {}
        try:
            request, notes = _request(service, settings, pools, prefix)
        except InvalidValue as exc:
            refused[service_id] = str(exc)
            continue
        warnings.extend((service_id, note) for note in notes)
        shared = settings.get('allow-shared-ip')
        wish = (service, request, (service.get('namespace'), shared) if shared else None, _ports(service))
        held = _held(service, pools, request)
        if held is not None and claims.problem(held, service, wish[2], wish[3]) is None:
            claims.take(held, service_id, wish[2], wish[3])
            assigned[service_id] = {'address': str(held), 'pool': pool_of(held, pools), 'how': 'held'}
        elif request[0] == 'address':
            asking.append(wish)
        else:
            pending.append(wish)
    for service, request, key, ports in asking:
        problem = claims.problem(request[1], service, key, ports)
        if problem:
            refused[_service_id(service)] = '%s: %s' % (request[2], problem)
            continue
        claims.take(request[1], _service_id(service), key, ports)
        assigned[_service_id(service)] = {'address': str(request[1]), 'pool': pool_of(request[1], pools),
                                          'how': request[2]}
    for service, request, key, ports in pending:
        address = _free(service, pools, request[1], claims, key, ports)
        if address is None:
            refused[_service_id(service)] = 'address pool %s has no free address' % request[1]
            continue
        claims.take(address, _service_id(service), key, ports)
        assigned[_service_id(service)] = {'address': str(address), 'pool': request[1], 'how': request[2]}
    return assigned, refused, warnings


def ingress(address, ports):
    """The status.loadBalancer.ingress Portico writes: the address, ipMode Proxy, the ports served."""
    if address is None:
        return []
    return [{'ip': address, 'ipMode': 'Proxy',
             'ports': [{'port': port, 'protocol': 'TCP'} for port in sorted(set(ports))]}]


def current_ips(service):
    """The addresses of a Service's status, as a message may show them (a status is anyone's to write)."""
    shown = []
    for entry in service.get('ingress') or []:
        value = entry.get('ip') or entry.get('hostname') if isinstance(entry, dict) else None
        try:
            shown.append(ip_address(value))
        except InvalidValue:
            shown.append(_show(value))
    return shown


def status_entry(service, address=None, pool=None, ports=(), reason=None, keep=False):
    """What to write on one Service's status, and the Event that tells it; None when nothing is to say.

    address None: the Service gets no address (reason says why); its status is cleared if
    Portico wrote it. keep: the Service keeps its address but nothing of it is served now (reason
    says why): its status stays, so the address stays its own.
    """
    desired = ingress(address, ports)
    current = service.get('ingress') or []
    ours = service.get('status_manager') == FIELD_MANAGER
    before = current_ips(service)
    if address is None and not (ours and current) and reason is None:
        return None
    # a refusal or a warning is one news for as long as its reason holds: told once, not every run
    key = None
    if keep:
        desired, key = current, 'kept: %s' % reason
        event = ('AddressNotServed', 'Warning', '%s is kept but not served: %s' % (address, reason))
    elif address is None:
        # another controller's status is left alone
        desired = [] if ours else current
        if reason:
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
        'event': None if event is None else {'reason': event[0], 'type': event[1], 'note': event[2], 'key': key},
    }
