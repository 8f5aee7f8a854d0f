# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allow-list parsers for every value a cluster user controls.

Private to this collection. Each parser returns the value in the form HAProxy may
print, or raises ``InvalidValue`` with a reason an operator can read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

# DNS-1123 label (namespaces), DNS-1035 label (service names), DNS-1123 subdomain
# (node names): the same rules the API server applies, so a valid cluster never trips them.
_DNS1123_LABEL = re.compile(r'\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z')
_DNS1035_LABEL = re.compile(r'\A[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z')
_HOSTNAME_LABEL = re.compile(r'\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z')
# The characters of IPv4 and IPv6 notation, before ipaddress reads the value.
_IP_CHARACTERS = re.compile(r'\A[0-9A-Fa-f:.]{2,45}\Z')
# An IPv4 address as ipaddress writes it (no leading zeros): read without ipaddress, which is slow.
_OCTET = r'(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
_CANONICAL_IPV4 = re.compile(r'\A%s(?:\.%s){3}\Z' % (_OCTET, _OCTET))


class InvalidValue(ValueError):
    """A cluster value that fails its allow-list; str() is the reason."""


def _show(value, limit=40):
    """Quote an untrusted value for a message: repr keeps control characters visible."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def namespace_name(value):
    if not isinstance(value, str) or not _DNS1123_LABEL.match(value):
        raise InvalidValue('namespace %s is not a DNS-1123 label' % _show(value))
    return value


def service_name(value):
    if not isinstance(value, str) or not _DNS1035_LABEL.match(value):
        raise InvalidValue('service name %s is not a DNS-1035 label' % _show(value))
    return value


def node_name(value):
    if not isinstance(value, str) or len(value) > 253 or not value:
        raise InvalidValue('node name %s is not a DNS-1123 subdomain' % _show(value))
    if not all(_HOSTNAME_LABEL.match(label) for label in value.split('.')):
        raise InvalidValue('node name %s is not a DNS-1123 subdomain' % _show(value))
    return value


def port_name(value):
    """A Service port name: a DNS-1123 label, as the API server validates it; empty means unnamed.

    Not the stricter IANA service name of container ports: ``kubectl create service nodeport x
    --tcp=8200:8080`` names its port ``8200-8080``, and names up to 63 characters are valid.
    Port names are never written into HAProxy's configuration; only annotations refer to them.
    """
    if value is None or value == '':
        return ''
    if not isinstance(value, str) or not _DNS1123_LABEL.match(value):
        raise InvalidValue('port name %s is not a DNS-1123 label (at most 63 lowercase letters, digits and "-", '
                           'starting and ending with a letter or digit)' % _show(value))
    return value


def port_number(value, what='port'):
    # bool is an int in Python; a JSON true must not become port 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValue('%s %s is not a number from 1 to 65535' % (what, _show(value)))
    return value


def ip_address(value, what='address'):
    """An IPv4 or IPv6 address in its compressed form, without a zone id.

    Python's ipaddress accepts an IPv6 zone id (``%`` and then any text, newlines included);
    a zone id means nothing on a load balancer's bind or a node's address, so it is refused,
    as are IPv4-mapped IPv6 addresses (HAProxy would bind or connect over IPv4 behind them).
    """
    if isinstance(value, str) and _CANONICAL_IPV4.match(value):
        return value
    if not isinstance(value, str) or not _IP_CHARACTERS.match(value):
        if isinstance(value, str) and '%' in value:
            raise InvalidValue('%s %s has an IPv6 zone id (the "%%..." part), which has no meaning here'
                               % (what, _show(value)))
        raise InvalidValue('%s %s is not an IP address' % (what, _show(value)))
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidValue('%s %s is not an IP address' % (what, _show(value)))
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        raise InvalidValue('%s %s is an IPv4-mapped IPv6 address; give the IPv4 address %s'
                           % (what, _show(value), parsed.ipv4_mapped))
    return parsed.compressed


def server_address(value, address_type):
    """A node address as HAProxy's ``server`` line takes it (IPv6 in brackets)."""
    if not isinstance(value, str) or not value:
        raise InvalidValue('%s address %s is not a string' % (address_type, _show(value)))
    if address_type == 'Hostname' or address_type in ('InternalDNS', 'ExternalDNS'):
        node_name(value.lower())
        # no top-level domain is numeric: HAProxy would read "999.1.1.1" as a bad IPv4 address
        if value.rsplit('.', 1)[-1].isdigit():
            raise InvalidValue('%s address %s looks like an IP address, not a DNS name' % (address_type, _show(value)))
        return value.lower()
    address = ip_address(value, '%s address' % address_type)
    return '[%s]' % address if ':' in address else address


def section_name(namespace, service, port):
    """The frontend and backend name of one service port: ``<namespace>.<service>.<port>``.

    Namespaces and service names contain no dots, so the name cannot collide.
    """
    return '%s.%s.%d' % (namespace_name(namespace), service_name(service), port_number(port))
