# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The metrics frontend of a load balancer: HAProxy's Prometheus exporter and its stats page on
one management address, behind basic auth or an allow-list of source networks.

Private to this collection; plain functions. ``settings`` checks the operator's values,
``render`` writes the section (placed after the base template, before the generated part, so
``haproxy -c`` validates it with the rest), and ``host_problem`` and ``address_problem`` keep it
off the addresses and ports that serve the cluster's Services.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue, ip_address

# The role's default port (defaults/main.yml says the same), HAProxy's documented one for its stats.
DEFAULT_PORT = 8404
FRONTEND = 'portico_metrics'
USERLIST = 'portico_metrics_users'
METRICS_PATH = '/metrics'
STATS_PATH = '/stats'
HEADER = '# Metrics of this load balancer (haproxy_sync_metrics_*), written by portico.k8s.haproxy_sync.'
_USER = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z')
# A crypt(3) hash, as HAProxy's "password" checks it: MD5, SHA-256, SHA-512, bcrypt, yescrypt.
_HASH = re.compile(r'\$(?:1|5|6|y|gy|7|2[abxy])\$[A-Za-z0-9./$=]{8,512}\Z')
_NETWORK = re.compile(r'[0-9A-Fa-f:./]{2,50}\Z')
_HIDDEN = re.compile(r'^(    user [A-Za-z0-9._-]+ password )\S+$', re.M)
_WILDCARDS = ('*', '', '0.0.0.0', '::', '[::]')
_SETTINGS = ('address', 'port', 'users', 'allow')


class MetricsError(ValueError):
    """Settings that cannot make the metrics frontend; the message names the variable and the reason."""


def _users(users):
    if users in (None, ''):
        return []
    if not isinstance(users, list):
        raise MetricsError('haproxy_sync_metrics_users must be a list of {name: ..., password: ...}')
    checked, names = [], set()
    for index, user in enumerate(users):
        if not isinstance(user, dict) or set(user) - set(('name', 'password')):
            raise MetricsError('haproxy_sync_metrics_users[%d] must be {name: ..., password: ...}, with no other keys'
                               % index)
        name, password = user.get('name'), user.get('password')
        if not isinstance(name, str) or not _USER.match(name):
            raise MetricsError('haproxy_sync_metrics_users[%d]: the name must be 1 to 64 letters, digits and ._- '
                               '(starting with a letter or digit)' % index)
        if name in names:
            raise MetricsError('haproxy_sync_metrics_users: %s is listed twice' % name)
        # the value is never shown: it is a secret, or a secret given by mistake
        if not isinstance(password, str) or not _HASH.match(password):
            raise MetricsError('haproxy_sync_metrics_users[%d] (%s): the password must be a crypt(3) hash, such as '
                               'the output of "openssl passwd -6" or "mkpasswd -m sha-512" ($6$...), never the '
                               'password itself' % (index, name))
        names.add(name)
        checked.append((name, password))
    return checked


def _networks(allow):
    if allow in (None, ''):
        return []
    if not isinstance(allow, list):
        raise MetricsError('haproxy_sync_metrics_allow must be a list of networks (CIDR) or addresses')
    checked = []
    for entry in allow:
        try:
            if not isinstance(entry, str) or not _NETWORK.match(entry):
                raise ValueError(entry)
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise MetricsError('haproxy_sync_metrics_allow: %r is not a network (CIDR) or an address' % (entry,))
        if network.version == 6 and network.network_address.ipv4_mapped is not None:
            raise MetricsError('haproxy_sync_metrics_allow: %s is an IPv4-mapped network; give the IPv4 one' % entry)
        text = network.with_prefixlen if network.num_addresses > 1 else str(network.network_address)
        if text not in checked:
            checked.append(text)
    return checked


def settings(value):
    """The metrics frontend's settings, checked: {'address', 'port', 'users': [(name, hash)],
    'allow': [networks]}; None when it is off (no address). MetricsError names what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(_SETTINGS):
        raise MetricsError('the metrics settings must be a dict of %s' % ', '.join(_SETTINGS))
    address = value.get('address')
    if address in (None, ''):
        return None
    if address in _WILDCARDS:
        raise MetricsError('haproxy_sync_metrics_address %s would serve the metrics on every address of the load '
                           'balancer, the Services\' too: give one management or loopback address' % address)
    try:
        parsed = ipaddress.ip_address(ip_address(address.strip('[]') if isinstance(address, str) else address,
                                                 'haproxy_sync_metrics_address'))
    except InvalidValue as exc:
        raise MetricsError('%s; give one management or loopback address' % exc)
    if parsed.is_unspecified or parsed.is_multicast:
        raise MetricsError('haproxy_sync_metrics_address %s is not an address of this host' % parsed)
    port = value.get('port', DEFAULT_PORT)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise MetricsError('haproxy_sync_metrics_port %r is not a port from 1 to 65535' % (port,))
    users, allow = _users(value.get('users')), _networks(value.get('allow'))
    if not users and not allow and not parsed.is_loopback:
        raise MetricsError('the metrics on %s would answer anyone who reaches that address: give '
                           'haproxy_sync_metrics_users (basic auth) or haproxy_sync_metrics_allow (the source '
                           'networks allowed), or use a loopback address' % parsed)
    return {'address': parsed.compressed, 'port': port, 'users': users, 'allow': allow}


def bind(checked):
    """The bind of the metrics frontend, IPv6 in brackets: '127.0.0.1:8404', '[::1]:8404'."""
    address = checked['address']
    return '%s:%d' % ('[%s]' % address if ':' in address else address, checked['port'])


def render(checked):
    """The section of the metrics frontend ('' when off): a userlist for basic auth, then the
    frontend. Every value has passed settings (strict patterns), and is checked again here."""
    if not checked:
        return ''
    again = settings({'address': checked['address'], 'port': checked['port'],
                      'users': [{'name': n, 'password': p} for n, p in checked['users']], 'allow': checked['allow']})
    if again != checked:
        raise MetricsError('the metrics settings were not checked')
    lines = [HEADER]
    if checked['users']:
        lines.append('userlist ' + USERLIST)
        lines.extend('    user %s password %s' % user for user in checked['users'])
        lines.append('')
    lines.extend(['frontend ' + FRONTEND, '    mode http', '    bind ' + bind(checked),
                  # a scrape every few seconds is not worth a log line
                  '    option dontlog-normal'])
    if checked['allow']:
        # refused before a byte is read: nothing answers an address that is not allowed
        lines.append('    tcp-request connection reject unless { src %s }' % ' '.join(checked['allow']))
    if checked['users']:
        lines.append('    http-request auth realm portico-metrics unless { http_auth(%s) }' % USERLIST)
    lines.extend(['    http-request use-service prometheus-exporter if { path %s }' % METRICS_PATH,
                  '    http-request deny deny_status 404 unless { path_beg %s }' % STATS_PATH,
                  '    stats enable', '    stats uri ' + STATS_PATH, '    stats refresh 30s'])
    return '\n'.join(lines) + '\n'


def redact(text):
    """text with the password hashes of the metrics users hidden (for a diff)."""
    return _HIDDEN.sub(lambda m: m.group(1) + '<hidden>', text) if text else text


def _same(address, other):
    try:
        return ipaddress.ip_address(address) == ipaddress.ip_address(other.strip('[]'))
    except (ValueError, AttributeError):
        return False


def address_problem(checked, forbidden, pools=None):
    """Why the metrics frontend must not bind its address, or None.

    forbidden: [(address, what it is)] that serve the cluster's Services (the role's bind address,
    a floating address); pools: the address pools (as _addresses.address_pools checks them), whose
    addresses go to LoadBalancer Services.
    """
    if not checked:
        return None
    for other, what in forbidden or []:
        if isinstance(other, str) and other not in _WILDCARDS and _same(checked['address'], other):
            return ('haproxy_sync_metrics_address %s is %s, which serves the cluster\'s Services: give the metrics a '
                    'management or loopback address of their own' % (checked['address'], what))
    address = ipaddress.ip_address(checked['address'])
    for pool in pools or []:
        for first, last in pool['ranges']:
            if first.version == address.version and first <= address <= last:
                return ('haproxy_sync_metrics_address %s is in the address pool %s, whose addresses go to '
                        'LoadBalancer Services: give the metrics a management or loopback address outside the pools'
                        % (address, pool['name']))
    return None


def floating(vips):
    """[(address, what it is)] of the floating addresses (haproxy_sync_vips), their prefix lengths left out."""
    return [(str(vip).partition('/')[0], 'a floating address (haproxy_sync_vips)') for vip in vips or []
            if isinstance(vip, str)]


def host_problem(checked, model, bind_address, base_ports, vips=None):
    """Why this load balancer cannot have its metrics frontend with this model, or None: a frontend
    of the model on its port (a model collected without the port reserved), its address a Service's
    own, a floating address or the role's bind address, or the base template binding the port itself."""
    if not checked:
        return None
    port = checked['port']
    taken = sorted(f.get('name') for f in model.get('frontends') or [] if f.get('port') == port)
    if taken:
        return ('the metrics port %d (haproxy_sync_metrics_port) is the port of frontend %s: the collect step leaves '
                'it to no Service when the load balancers set haproxy_sync_metrics_address; a model given as '
                'haproxy_sync_model must have been collected so too' % (port, ', '.join(taken[:5])))
    if port in base_ports:
        return ('the base template binds port %d itself, the metrics port (haproxy_sync_metrics_port): choose another '
                'port for one of them' % port)
    own = [(f['address'], 'the address of LoadBalancer service %s' % f.get('service'))
           for f in model.get('frontends') or [] if f.get('address')]
    return address_problem(checked, [(bind_address, 'haproxy_sync_bind_address')] + own + floating(vips))


def load_balancer_ports(values, pools):
    """The metrics ports of the load balancers that have a metrics frontend, sorted, for the collect
    step to leave to no Service; MetricsError naming every load balancer whose settings cannot be.

    values: {load balancer: {variable: value}} of haproxy_sync_metrics_address, _port, _users,
    _allow, haproxy_sync_bind_address and haproxy_sync_vips as its variables set them (a missing port is the
    default); pools: the address pools, checked (_addresses.address_pools).
    """
    ports, problems = set(), []
    for host in sorted(values):
        given = values[host]
        try:
            checked = settings({'address': given.get('haproxy_sync_metrics_address'),
                                'port': given.get('haproxy_sync_metrics_port', DEFAULT_PORT),
                                'users': given.get('haproxy_sync_metrics_users'),
                                'allow': given.get('haproxy_sync_metrics_allow')})
            problem = address_problem(checked, [(given.get('haproxy_sync_bind_address'), 'haproxy_sync_bind_address')]
                                      + floating(given.get('haproxy_sync_vips')), pools)
        except MetricsError as exc:
            checked, problem = None, str(exc)
        if problem:
            problems.append('%s: %s' % (host, problem))
        elif checked:
            ports.add(checked['port'])
    if problems:
        raise MetricsError('the metrics frontend cannot be set up as given (%s); nothing was changed'
                           % '; '.join(problems[:5]))
    return sorted(ports)
