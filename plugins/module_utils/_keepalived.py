# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""keepalived on the load balancers: the floating addresses, the VRRP settings checked, the
keepalived.conf they make, the health check keepalived runs, and the rollout order.

Every value that reaches the file is parsed here first (addresses by ipaddress, names and numbers
by their rules) and written back in its canonical form, so nothing from the inventory or the model
can add a line or a block to the file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

# an interface name as the kernel takes it (IFNAMSIZ - 1), without the characters the file uses
_INTERFACE = re.compile(r'^[A-Za-z0-9_.@-]{1,15}$')
_PATH = re.compile(r'^/[A-Za-z0-9_./@+-]*$')
# the characters of an IPv4 or IPv6 address (no zone id), and of one with a prefix length
_ADDRESS = re.compile(r'^[0-9A-Fa-f:.]{2,45}$')
_WITH_PREFIX = re.compile(r'^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$')

REFUSED_SUFFIX = '.portico-refused'
CHECK_NAME = 'portico_haproxy'
INSTANCE_NAME = 'portico'
HEADER = ('# Managed by portico.k8s.haproxy_config: the floating addresses of these load balancers.\n'
          '# Changes made here are replaced by the next sync.\n')


class VrrpError(ValueError):
    """A VRRP setting that cannot be used; str() says which and why."""


def _address(value, what, hint=''):
    # a zone id ('%' and any text, newlines too) would reach the file: refused with everything else odd
    text = str(value).strip()
    if not _ADDRESS.match(text):
        raise VrrpError('%s %r is not an IP address%s' % (what, value, hint))
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise VrrpError('%s %r is not an IP address%s' % (what, value, hint))


def _floating(value, what):
    """An address of a floating address list: the address alone (a host prefix) or with a prefix length."""
    text = str(value).strip()
    if not _WITH_PREFIX.match(text):
        raise VrrpError('%s %r is not an IP address (or an address with a prefix length, 192.0.2.10/24)'
                        % (what, value))
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise VrrpError('%s %r is not an IP address (or an address with a prefix length, 192.0.2.10/24)'
                        % (what, value))
    address = interface.ip
    if address.is_multicast or address.is_unspecified or address.is_loopback or address.is_link_local:
        raise VrrpError('%s %s cannot float between hosts (multicast, unspecified, loopback or link-local)'
                        % (what, text))
    if '/' not in text:
        interface = ipaddress.ip_interface('%s/%d' % (address, address.max_prefixlen))
    return interface


def _number(value, what, low, high):
    if isinstance(value, bool):
        raise VrrpError('%s must be a number from %d to %d, not %r' % (what, low, high, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise VrrpError('%s must be a number from %d to %d, not %r' % (what, low, high, value))
    if number != value and str(number) != str(value).strip():
        raise VrrpError('%s must be a whole number from %d to %d, not %r' % (what, low, high, value))
    if not low <= number <= high:
        raise VrrpError('%s must be from %d to %d, not %d' % (what, low, high, number))
    return number


def _interval(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = None
    if isinstance(value, bool) or seconds is None or not 0.01 <= seconds <= 255:
        raise VrrpError('haproxy_sync_vrrp_advert_interval must be seconds from 0.01 to 255, not %r' % (value,))
    return ('%.2f' % seconds).rstrip('0').rstrip('.')


def _path(value, what):
    if not isinstance(value, str) or not _PATH.match(value) or '/../' in value + '/':
        raise VrrpError('%s must be an absolute path of letters, digits and _./@+- only, not %r' % (what, value))
    return value


def settings(options):
    """The VRRP settings of one load balancer, checked: options as the module takes them
    (interface, address, peers, router_id, priority, advert_interval, preempt,
    check_script, config_path of HAProxy, runtime_socket). Raises VrrpError naming the setting."""
    interface = options.get('interface')
    if not isinstance(interface, str) or not _INTERFACE.match(interface):
        raise VrrpError('haproxy_sync_vrrp_interface must name the network interface that carries the floating '
                        'addresses (eth0, bond0.12), not %r' % (interface,))
    address = _address(options.get('address'), 'haproxy_sync_vrrp_address')
    peers = []
    for peer in options.get('peers') or []:
        peer = _address(peer, 'the VRRP peer', ' (haproxy_sync_vrrp_peers; set haproxy_sync_vrrp_address for a '
                        'load balancer whose ansible_host is a name)')
        if peer.version != address.version:
            raise VrrpError('the VRRP peer %s is not of the family of this host\'s haproxy_sync_vrrp_address %s'
                            % (peer, address))
        if peer != address and peer not in peers:
            peers.append(peer)
    return {
        'interface': interface,
        'address': address,
        'peers': sorted(peers, key=lambda a: a.packed),
        'router_id': _number(options.get('router_id', 51), 'haproxy_sync_vrrp_router_id', 1, 255),
        'priority': _number(options.get('priority', 100), 'haproxy_sync_vrrp_priority', 1, 254),
        'advert_interval': _interval(options.get('advert_interval', 0.5)),
        'preempt': bool(options.get('preempt')),
        'check_script': _path(options.get('check_script'), 'haproxy_sync_keepalived_check_script'),
        'config_path': _path(options.get('config_path'), 'the HAProxy configuration path'),
        'runtime_socket': _path(options.get('runtime_socket'), 'the HAProxy stats socket'),
        'name': re.sub(r'[^A-Za-z0-9_.-]', '_', str(options.get('name') or 'portico'))[:64],
    }


def service_addresses(model):
    """The own addresses of the LoadBalancer Services the model serves, as the frontends bind them."""
    found = set()
    for frontend in (model or {}).get('frontends') or []:
        if isinstance(frontend, dict) and frontend.get('address'):
            found.add(str(frontend['address']))
    return sorted(found)


def floating_addresses(vips, model=None, with_services=True):
    """The addresses keepalived moves: the operator's VIPs, then (with_services) the Service addresses of the
    model; each once, as ipaddress interfaces, in a stable order (IPv4 first, then by address)."""
    found = {}
    for vip in vips or []:
        interface = _floating(vip, 'the floating address')
        if interface.ip in found and found[interface.ip] != interface:
            raise VrrpError('the floating address %s is given twice with different prefix lengths' % interface.ip)
        found[interface.ip] = interface
    if with_services:
        for address in service_addresses(model):
            interface = _floating(address, 'the Service address')
            found.setdefault(interface.ip, interface)
    return sorted(found.values(), key=lambda i: (i.version, i.ip.packed))


def render(vrrp, addresses):
    """keepalived.conf for this host: one VRRP instance over unicast that holds every floating address
    (those of the other family are moved with it, as excluded addresses), tracked by the HAProxy check."""
    if not addresses:
        raise VrrpError('no floating address: set haproxy_sync_vips, or give LoadBalancer Services addresses')
    if not vrrp['peers']:
        raise VrrpError('no VRRP peer: a floating address needs at least two load balancers '
                        '(haproxy_sync_vrrp_peers, or the other hosts of the group)')
    family = vrrp['address'].version
    carried = [a for a in addresses if a.version == family]
    excluded = [a for a in addresses if a.version != family]
    lines = [
        'global_defs {',
        '    router_id %s' % vrrp['name'],
        # version 3: sub-second adverts, and IPv6 as well as IPv4
        '    vrrp_version 3',
        '    enable_script_security',
        '    script_user root',
        '}',
        '',
        '# fails when HAProxy does not answer or this host refused the current configuration',
        'vrrp_script %s {' % CHECK_NAME,
        '    script "%s %s %s"' % (vrrp['check_script'], vrrp['config_path'], vrrp['runtime_socket']),
        '    interval 1',
        # the check looks for WATCH_SECONDS, and each question takes at most a second more
        '    timeout 3',
        '    fall 1',
        '    rise 2',
        '}',
        '',
        'vrrp_instance %s {' % INSTANCE_NAME,
        # BACKUP everywhere: the address goes to a host only when none holds it
        '    state BACKUP',
    ]
    if not vrrp['preempt']:
        lines.append('    nopreempt')
    lines += [
        '    interface %s' % vrrp['interface'],
        '    virtual_router_id %d' % vrrp['router_id'],
        '    priority %d' % vrrp['priority'],
        '    advert_int %s' % vrrp['advert_interval'],
        '    unicast_src_ip %s' % vrrp['address'],
        '    unicast_peer {',
    ]
    lines += ['        %s' % peer for peer in vrrp['peers']]
    lines.append('    }')
    lines.append('    virtual_ipaddress {')
    lines += ['        %s dev %s' % (a.with_prefixlen, vrrp['interface']) for a in carried]
    lines.append('    }')
    if excluded:
        lines.append('    virtual_ipaddress_excluded {')
        lines += ['        %s dev %s' % (a.with_prefixlen, vrrp['interface']) for a in excluded]
        lines.append('    }')
    lines += ['    track_script {', '        %s' % CHECK_NAME, '    }', '}']
    if not carried:
        raise VrrpError('no floating address of the family of haproxy_sync_vrrp_address %s: VRRP carries '
                        'at least one of its own family' % vrrp['address'])
    return HEADER + '\n'.join(lines) + '\n'


# keepalived runs a check at most once a second: the check itself looks every WATCH_EVERY seconds for
# WATCH_SECONDS, so a HAProxy that stops is seen within a tenth of a second, not up to a second later
WATCH_SECONDS, WATCH_EVERY = 0.8, 0.1
# keepalived runs this (as root); it reads one file's presence and asks one socket, nothing else.
CHECK_SCRIPT = '''\
#!%(python)s
"""Exit 0 when HAProxy on this host answers on its stats socket and this host did not refuse the
current configuration (keepalived's track_script; written by portico.k8s.haproxy_config)."""
import os
import socket
import sys
import time


def serving(config, runtime):
    if os.path.lexists(config + '%(refused)s'):
        return False
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(0.5)
    try:
        client.connect(runtime)
        client.sendall(b'show info\\n')
        answer = b''
        while b'\\nPid: ' not in answer and len(answer) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk
    except (OSError, socket.timeout):
        return False
    finally:
        client.close()
    return b'\\nPid: ' in answer or answer.startswith(b'Pid: ')


def watch(config, runtime, seconds=%(watch)s, every=%(every)s):
    """keepalived runs this once a second: look every 0.1 s for most of that second, and fail at once."""
    deadline = time.monotonic() + seconds
    while serving(config, runtime):
        if time.monotonic() >= deadline:
            return True
        time.sleep(every)
    return False


if __name__ == '__main__':
    sys.exit(0 if len(sys.argv) == 3 and watch(sys.argv[1], sys.argv[2]) else 1)
'''


def check_script(python):
    """The health check keepalived runs, for the host's own interpreter (an absolute path)."""
    return CHECK_SCRIPT % {'python': _path(python, 'the Python interpreter'), 'refused': REFUSED_SUFFIX,
                           'watch': WATCH_SECONDS, 'every': WATCH_EVERY}


def rollout(hosts, holding):
    """(order, batches): the load balancers that hold no floating address first, then those whose state is
    unknown, the holders last (clients move to an updated host before their own is updated); batches is
    the serial that keeps the holders alone at the end (one host first, as the canary) or None when nothing
    holds an address. holding maps a host to True, False, or None (not asked)."""
    free = [h for h in hosts if holding.get(h) is False]
    unknown = [h for h in hosts if holding.get(h) is None]
    holders = [h for h in hosts if holding.get(h) is True]
    order = free + unknown + holders
    if not holders or len(order) < 2:
        return order, None
    before = len(free) + len(unknown)
    if not before:
        # every host holds one (a split brain, a leftover address): still one host first, as the canary
        return order, [1, len(order) - 1]
    batches = [1]
    if before > 1:
        batches.append(before - 1)
    batches.append(len(holders))
    return order, batches


def configured_addresses(text):
    """The floating addresses a keepalived.conf moves (its virtual_ipaddress blocks), as text."""
    found, inside = [], False
    for line in text.splitlines():
        words = line.split('#', 1)[0].split()
        if not words:
            continue
        if words[0] in ('virtual_ipaddress', 'virtual_ipaddress_excluded') and words[-1] == '{':
            inside = True
        elif inside and words[0] == '}':
            inside = False
        elif inside:
            found.append(words[0])
    return found


def holds(addresses, local):
    """Whether any of the floating addresses is among this host's local addresses (both lists of text)."""
    mine = set()
    for text in local:
        try:
            mine.add(ipaddress.ip_interface(text).ip)
        except ValueError:
            continue
    return sorted(str(a) for a in mine.intersection(ipaddress.ip_interface(a).ip for a in addresses))
