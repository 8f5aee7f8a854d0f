# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-service settings from annotations, each parsed against an allow-list.

Private to this collection. ``ANNOTATIONS`` is the one table of every annotation (its
allowed values and default, as the README documents them); ``parse_settings`` turns a
service's annotations (already cut to those under the prefix) into settings, or raises
``InvalidValue`` naming the annotation and the reason. Nothing is passed through raw.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue, _show, ip_address, port_name

DEFAULT_PREFIX = 'portico.io/'
# Longer values are cut when the service is read; a cut value fails its parser.
MAX_VALUE_LENGTH = 2048

_PREFIX = re.compile(r'\A[a-z0-9]([-a-z0-9.]{0,250}[a-z0-9])?/\Z')
_TIME = re.compile(r'\A([0-9]{1,9})(us|ms|s|m|h|d)?\Z')
_TIME_MS = {'us': 0.001, 'ms': 1, 's': 1000, 'm': 60000, 'h': 3600000, 'd': 86400000, None: 1}
# "%" only as a percent-encoding: "%[" would read as a sample fetch where HAProxy formats text
_PATH = re.compile(r'\A/(?:[A-Za-z0-9._~!&()*+,;=:@/?-]|%[0-9A-Fa-f]{2}){0,255}\Z')
_TOKEN = re.compile(r'\A[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z')
_HDR = re.compile(r'\Ahdr\(([^()]*)\)\Z')
_HOST_LABEL = re.compile(r'\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z')
_NUMBER = re.compile(r'\A[0-9]{1,7}\Z')
_DIGITS = re.compile(r'\A[0-9]+\Z')
# A DNS subdomain, short enough that "<namespace>_<name>.<version>.pem" fits a file name.
_SECRET = re.compile(r'\A[a-z0-9]([-a-z0-9.]{0,168}[a-z0-9])?\Z')
_POOL = re.compile(r'\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z')
_KEY = re.compile(r'\A[A-Za-z0-9._-]{1,63}\Z')


def _choice(*allowed):
    def parse(value):
        if value not in allowed:
            raise InvalidValue('%s is not one of %s' % (_show(value), ', '.join(allowed)))
        return value
    return parse


def _boolean(value):
    if value in ('true', 'false'):
        return value == 'true'
    raise InvalidValue('%s is not true or false' % _show(value))


def _integer(low, high):
    def parse(value):
        if not isinstance(value, str) or not _NUMBER.match(value) or not low <= int(value) <= high:
            raise InvalidValue('%s is not a whole number from %d to %d' % (_show(value), low, high))
        return int(value)
    return parse


def _time(low_ms, high_ms, bounds):
    def parse(value):
        match = _TIME.match(value) if isinstance(value, str) else None
        if not match or not low_ms <= int(match.group(1)) * _TIME_MS[match.group(2)] <= high_ms:
            raise InvalidValue('%s is not a HAProxy time (like 2s or 500ms) from %s' % (_show(value), bounds))
        return value
    return parse


def _balance(value):
    if value in ('roundrobin', 'leastconn', 'source', 'first', 'uri'):
        return value
    match = _HDR.match(value) if isinstance(value, str) else None
    if match and _TOKEN.match(match.group(1)):
        return value
    raise InvalidValue('%s is not one of roundrobin, leastconn, source, first, uri, hdr(<header name>)'
                       % _show(value))


def _path(value):
    if not isinstance(value, str) or not _PATH.match(value):
        raise InvalidValue('%s is not a path (a "/" then letters, digits, -._~!&()*+,;=:@/? and %%XX encodings)'
                           % _show(value))
    return value


def _address(value):
    return ip_address(value, 'value')


def _port_ref(value):
    """A service port by number (1-65535) or name. Digits only are always a number: a port whose
    name is all digits (a valid DNS-1123 label) is referred to by its port number."""
    if _DIGITS.match(value):
        if not _NUMBER.match(value) or not 1 <= int(value) <= 65535:
            raise InvalidValue('port %s is not from 1 to 65535' % _show(value))
        return int(value)
    if not value:
        raise InvalidValue('empty port name')
    return port_name(value)


def _items(value):
    if not isinstance(value, str):
        raise InvalidValue('%s is not a string' % _show(value))
    items = [item.strip(' ') for item in value.split(',')]
    if not all(items):
        raise InvalidValue('%s has an empty item' % _show(value))
    return items


def _ports(value):
    return [_port_ref(item) for item in _items(value)]


def _frontend_port(value):
    """A single port number, or ``name=port,...`` per service port name or number."""
    if isinstance(value, str) and _NUMBER.match(value):
        return _integer(1, 65535)(value)
    mapping = {}
    for item in _items(value):
        key, sep, port = item.partition('=')
        if not sep:
            raise InvalidValue('%s is not a port number or name=port' % _show(item))
        ref = _port_ref(key.strip(' '))
        if ref in mapping:
            raise InvalidValue('port %s is given twice' % _show(ref))
        mapping[ref] = _integer(1, 65535)(port.strip(' '))
    return mapping


def host_name(value):
    """A DNS name, or ``*.`` and a DNS name (a wildcard); lowercased."""
    name = value.lower() if isinstance(value, str) else value
    if not isinstance(name, str) or not name.isascii() or len(name) > 253:
        raise InvalidValue('host %s is not a DNS name' % _show(value))
    labels = name.split('.')
    if labels[0] == '*':
        labels = labels[1:]
        if len(labels) < 2:
            raise InvalidValue('wildcard %s needs at least two labels after "*."' % _show(value))
    if not labels or not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidValue('host %s is not a DNS name (or *. and a DNS name)' % _show(value))
    return name


def _secret(value):
    if not isinstance(value, str) or not _SECRET.match(value) or '..' in value:
        raise InvalidValue('%s is not a Secret name (lowercase letters, digits, "-" and ".", at most 170)'
                           % _show(value))
    return value


def _hosts(value):
    hosts = [host_name(item) for item in _items(value)]
    if len(set(hosts)) != len(hosts):
        raise InvalidValue('%s names a host twice' % _show(value))
    return sorted(hosts)


def _pool_name(value):
    if not isinstance(value, str) or not _POOL.match(value):
        raise InvalidValue('%s is not an address pool name (a DNS-1123 label)' % _show(value))
    return value


def _sharing_key(value):
    if not isinstance(value, str) or not _KEY.match(value):
        raise InvalidValue('%s is not a sharing key (1 to 63 letters, digits, "-", "_", ".")' % _show(value))
    return value


_TIMEOUT = _time(1, 86400000, '1ms to 24h')

# name -> (parser, values as documented, default as documented). One source of truth: the
# README table "Per-service annotations" is checked against it by the unit tests.
ANNOTATIONS = {
    'expose': (_boolean, '`true`, `false`', 'option `expose_by_default` (`true`)'),
    'mode': (_choice('tcp', 'http'), '`tcp`, `http`', '`tcp`'),
    'balance': (_balance, '`roundrobin`, `leastconn`, `source`, `first`; in `http` mode also `uri`, '
                '`hdr(<header name>)`', '`roundrobin`'),
    'check': (_choice('tcp', 'http'), '`tcp`, `http`', '`tcp` (a connect to the nodePort)'),
    'check-path': (_path, 'a path: `/` then letters, digits, `-._~!&()*+,;=:@/?` and `%XX` encodings', '`/`'),
    'check-method': (_choice('GET', 'HEAD', 'OPTIONS'), '`GET`, `HEAD`, `OPTIONS`', '`GET`'),
    'check-status': (_integer(100, 599), '100 to 599', '`200`'),
    'check-interval': (_time(100, 3600000, '100ms to 1h'), 'a time, `100ms` to `1h`', 'the base template\'s'),
    'check-rise': (_integer(1, 100), '1 to 100', 'the base template\'s'),
    'check-fall': (_integer(1, 100), '1 to 100', 'the base template\'s'),
    'proxy-protocol': (_choice('none', 'v1', 'v2'), '`none`, `v1`, `v2`', '`none`'),
    'accept-proxy': (_boolean, '`true`, `false`', '`false`'),
    'timeout-connect': (_TIMEOUT, 'a time, `1ms` to `24h`', 'the base template\'s'),
    'timeout-client': (_TIMEOUT, 'a time, `1ms` to `24h`', 'the base template\'s'),
    'timeout-server': (_TIMEOUT, 'a time, `1ms` to `24h`', 'the base template\'s'),
    'timeout-tunnel': (_TIMEOUT, 'a time, `1ms` to `24h`', 'none'),
    'maxconn': (_integer(1, 1000000), '1 to 1000000', 'none (the global limit)'),
    'frontend-port': (_frontend_port, 'a port, or `name=port,...` per service port name or number (digits '
                      'only are a number)',
                      'the service port (option `frontend_port`)'),
    'bind-address': (_address, 'an IPv4 or IPv6 address, without a zone id (`%...`); not IPv4-mapped IPv6',
                     'role variable `haproxy_sync_bind_address`'),
    'ports': (_ports, 'service port names or numbers, comma-separated; digits only are a number (a port named '
              '`8080` is given by its port number)', 'every TCP port'),
    'hosts': (_hosts, 'DNS names or `*.` wildcards, comma-separated', 'none (a port of its own)'),
    'host-default': (_boolean, '`true`, `false`', '`false`'),
    'tls-secret': (_secret, 'the name of a Secret of type `kubernetes.io/tls` in the service\'s namespace',
                   'none (no TLS termination)'),
    'tls-redirect-port': (_integer(1, 65535), 'a port; in `http` mode with `tls-secret`, plain HTTP there is '
                          'redirected to HTTPS', 'none (no redirect)'),
    'address': (_address, 'for a LoadBalancer service Portico implements: its external address, in an address '
                'pool', 'from `address-pool`'),
    'address-pool': (_pool_name, 'for a LoadBalancer service Portico implements: the name of the address pool '
                     'to take its address from', 'the first pool of option `address_pools`'),
    'allow-shared-ip': (_sharing_key, 'a sharing key: services with the same key may share one address when '
                        'no port of theirs clashes', 'none (an address of its own)'),
}

HTTP_ONLY_BALANCE = ('uri', 'hdr(')


def check_prefix(prefix):
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidValue('annotation_prefix %s is not a DNS subdomain followed by "/"' % _show(prefix))
    return prefix


def parse_settings(annotations, prefix=DEFAULT_PREFIX):
    """(settings, warnings) from a service's annotations under the prefix (keys without it).

    Raises InvalidValue (naming the annotation) for the first bad value, in name order.
    Unknown annotations under the prefix are ignored with a warning.
    """
    settings, warnings = {}, []
    for key in sorted(annotations or {}):
        if key not in ANNOTATIONS:
            warnings.append('unknown annotation %s%s ignored' % (prefix, _show(key, 60)))
            continue
        try:
            settings[key] = ANNOTATIONS[key][0](annotations[key])
        except InvalidValue as exc:
            raise InvalidValue('annotation %s%s: %s' % (prefix, key, exc))
    balance = settings.get('balance', '')
    if balance.startswith(HTTP_ONLY_BALANCE) and settings.get('mode', 'tcp') != 'http':
        raise InvalidValue('annotation %sbalance: %s needs %smode http' % (prefix, balance, prefix))
    if settings.get('check') != 'http':
        for key in ('check-path', 'check-method', 'check-status'):
            if key in settings:
                warnings.append('annotation %s%s ignored: %scheck is not http' % (prefix, key, prefix))
                del settings[key]
    if settings.get('host-default') and not settings.get('hosts'):
        warnings.append('annotation %shost-default ignored: it needs %shosts' % (prefix, prefix))
        del settings['host-default']
    if 'tls-redirect-port' in settings and ('tls-secret' not in settings or settings.get('mode') != 'http'):
        warnings.append('annotation %stls-redirect-port ignored: it needs %stls-secret and %smode http'
                        % (prefix, prefix, prefix))
        del settings['tls-redirect-port']
    return settings, warnings
