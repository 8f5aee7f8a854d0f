# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of the host step, as plain functions: what the current file serves, the new
file's text, the safety valve, which certificates go, where to look for the new worker.

Private to this collection; used by the haproxy_config module on the load balancer (and by the
deprecated haproxy_lock module).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.portico.k8s.plugins.module_utils._certificates import FILE_NAME
from ansible_collections.portico.k8s.plugins.module_utils._haproxy import MARKER, starts_own_block

_BACKEND = re.compile(r'^backend (\S+)')
_FILE = r'([A-Za-z0-9][A-Za-z0-9._-]*[.]pem)'
# A UNIX stats socket of the global section ("ipv4@", "abns@" and ports are not files to connect to).
_STATS_SOCKET = re.compile(r'^[ \t]*stats[ \t]+socket[ \t]+(?:unix@)?(/[^\s#]+)', re.M)
_BIND_PORTS = re.compile(r'(?m)^\s*bind\s+\S*:([0-9]+)')
_WILDCARDS = ('*', '', '0.0.0.0', '::', '[::]')
_SHOWN_BACKENDS = 20
_CERT_DIR = re.compile(r'/[A-Za-z0-9._/-]+\Z')


# What the host step reads of a model; the lists of what is left out travel as counts only.
_HOST_KEYS = ('source', 'nodes', 'draining_nodes', 'frontends', 'backends', 'certificates')
_COUNTED = ('excluded_nodes', 'excluded_services')


def slim(model):
    """The model as the host step needs it: the same rendering, without the lists of excluded
    nodes and services (often most of a large cluster's model), which the header only counts."""
    out = dict((key, model[key]) for key in _HOST_KEYS if key in model)
    for key in _COUNTED:
        out[key + '_count'] = model[key + '_count'] if key + '_count' in model else len(model.get(key) or [])
    return out


def compose(base, generated):
    """The whole haproxy.cfg: the operator's base template (as rendered for this host), then the generated part."""
    return base.strip() + '\n\n' + generated


def generated_part(lines, cert_dir=None):
    """(backends, certificate files, foreign lines) of the generated part among lines (after the marker).

    Foreign lines start a section, setting or block the renderer never writes (an injection into
    a file an older version wrote): up to five (line number, the line's start) pairs.
    """
    backends, certificates, foreign = [], [], []
    crt = re.compile(r' crt %s/%s' % (re.escape(cert_dir.rstrip('/')), _FILE)) if cert_dir else None
    generated = False
    for number, line in enumerate(lines, 1):
        if not generated:
            generated = line.startswith(MARKER)
            continue
        if len(foreign) < 5 and starts_own_block(line):
            foreign.append((number, line.strip()[:40]))
        match = _BACKEND.match(line)
        if match:
            backends.append(match.group(1))
        elif crt is not None and ' crt ' in line:
            certificates.extend(name for name in crt.findall(line) if name not in certificates)
    return backends, certificates, foreign


def read_generated(path, cert_dir=None):
    """(exists, backends, certificate files, foreign lines) of the generated part of the file at path."""
    try:
        handle = open(path, 'r', errors='replace')
    except (IOError, OSError):
        return (False, [], [], [])
    with handle:
        return (True,) + generated_part(handle, cert_dir)


def left_out(current, wanted):
    """The items of current that wanted does not have, in current's order."""
    keep = set(wanted)
    return [name for name in current if name not in keep]


_SERVER_LINE = re.compile(r'    server (\S+) ')
_DRAINING = re.compile(r' weight 0(?: |\Z)')


def serving_nodes(lines):
    """The servers (by name, which is the node's) that serve at least one backend of the generated
    part among lines with a weight above 0 (a draining node, weight 0, takes no new connections)."""
    nodes, generated = set(), False
    for line in lines:
        if not generated:
            generated = line.startswith(MARKER)
            continue
        match = _SERVER_LINE.match(line)
        if match and not _DRAINING.search(line.rstrip('\n')):
            nodes.add(match.group(1))
    return nodes


def _percent(ratio):
    return ('%.1f' % (ratio * 100)).rstrip('0').rstrip('.')


def _shown(names):
    return ', '.join(names[:_SHOWN_BACKENDS]) + (' ...' if len(names) > _SHOWN_BACKENDS else '')


def peak_of(peaks, now, window):
    """(backends, nodes, since) at most served within the last window seconds, from the entries
    [time, backends, nodes] the host recorded; None when none is in the window."""
    inside = [entry for entry in peaks or [] if _entry(entry) and now - window <= entry[0] <= now + 60]
    if not inside or window <= 0:
        return None
    return (max(entry[1] for entry in inside), max(entry[2] for entry in inside), min(entry[0] for entry in inside))


def _entry(entry):
    """Whether entry is [time, backends, nodes] as add_peak writes it (a damaged record is ignored)."""
    return (isinstance(entry, list) and len(entry) == 3
            and isinstance(entry[0], (int, float)) and not isinstance(entry[0], bool) and 0 <= entry[0] < 1e11
            and all(isinstance(count, int) and not isinstance(count, bool) and 0 <= count < 10 ** 7
                    for count in entry[1:]))


def add_peak(peaks, now, backends, nodes, window, reset=False):
    """The entries to record once a file with this many backends and serving nodes serves: those in
    the window that this one does not cover (at most 50), then this one."""
    keep = [] if reset else [entry for entry in peaks or [] if _entry(entry) and now - window <= entry[0] <= now
                             and (entry[1] > backends or entry[2] > nodes)]
    return keep[-49:] + [[round(now, 3), backends, nodes]]


def removal_problem(path, current, wanted, max_ratio, force=False, serving=None, peak=None, window=None):
    """Why the new file must not replace the current one (the safety valve), or None.

    current: the backends of the current file's generated part; wanted: the new file's. serving:
    (nodes serving in the current file, nodes serving in the new one), see serving_nodes. peak:
    (backends, nodes, since) the host served at most within the last window seconds (peak_of). A
    wrong selector, a partial API answer, a rebuilt cluster or most nodes going NotReady must not
    empty the load balancers, in one run or in several.
    """
    if force:
        return None
    removed = left_out(current, wanted)
    limit = _percent(max_ratio)
    if current and len(removed) > max_ratio * len(current):
        return ('Refusing to remove %d of the %d backends in %s (more than %s%%, haproxy_sync_max_removal_ratio). '
                'A wrong selector, a partial API answer or a rebuilt cluster looks like this. Would go: %s. '
                'If this is intended, run again with haproxy_sync_force=true.'
                % (len(removed), len(current), path, limit, _shown(removed)))
    if serving is not None:
        # by count: nodes that others replace (a node pool swapped, Local endpoints moving) take nothing away
        before, after = serving
        if before and len(before) - len(after) > max_ratio * len(before):
            return ('Refusing to go from %d nodes that serve in %s to %d (more than %s%% fewer, '
                    'haproxy_sync_max_removal_ratio). Nodes going NotReady or excluded all at once, or a wrong node '
                    'selector, look like this. Would go: %s. If this is intended, run again with '
                    'haproxy_sync_force=true.' % (len(before), path, len(after), limit, _shown(sorted(before - after))))
    if peak is not None and peak[0] and peak[0] - len(wanted) > max_ratio * peak[0]:
        return ('Refusing to leave %d backends in %s: within the last %d seconds (haproxy_sync_removal_window) it '
                'served %d, and removals over several runs count together, so this would take away more than %s%% '
                '(haproxy_sync_max_removal_ratio). If this is intended, run again with haproxy_sync_force=true, or '
                'wait until that window has passed.' % (len(wanted), path, window or 0, peak[0], limit))
    return None


def shrinking(path, serving, peak, max_ratio, window):
    """A warning when the nodes that serve have fallen by more than max_ratio from the most served
    within the window, over several runs (each under the ratio), else None.

    Nodes come and go with autoscaling, and HAProxy health-checks each one itself, so a gradual fall
    is told rather than refused; a fall within one run is refused (removal_problem).
    """
    if peak is None or not peak[1] or peak[1] - len(serving) <= max_ratio * peak[1]:
        return None
    return ('%s serves %d nodes; within the last %d seconds (haproxy_sync_removal_window) it served %d: more than '
            '%s%% fewer (haproxy_sync_max_removal_ratio), over several runs. If this is not a cluster scaling down, '
            'look at the nodes: this is how nodes going NotReady or a narrowing node selector look.'
            % (path, len(serving), window or 0, peak[1], _percent(max_ratio)))


def stored_certificates(cert_dir):
    """The collection's certificate files in cert_dir, by their name pattern."""
    try:
        names = os.listdir(cert_dir) if cert_dir else []
    except (IOError, OSError):
        return []
    return sorted(name for name in names if FILE_NAME.match(name))


def unused_certificates(stored, wanted):
    """The collection's files in the certificate directory that the new file does not bind."""
    return sorted(left_out(stored, wanted))


def stats_socket(base):
    """The first UNIX stats socket the base configuration declares, or None."""
    match = _STATS_SOCKET.search(base)
    return match.group(1) if match else None


def base_ports(base):
    """The ports the base configuration binds itself."""
    return sorted(set(int(port) for port in _BIND_PORTS.findall(base)))


def taken_ports(base, model):
    """The model's frontend ports the base configuration binds too (haproxy -c would accept both)."""
    ports = set(base_ports(base))
    return sorted(set(f['port'] for f in model['frontends'] if f['port'] in ports))


def probe_address(model, bind_address):
    """(host, port) of a frontend to connect to when no stats socket tells the new worker apart, or None.

    A frontend on the role's bind address if there is one: a bind-address annotation may name an
    address this host does not answer on from here.
    """
    frontends = sorted(model['frontends'], key=lambda f: bool(f.get('bind_address')))
    if not frontends:
        return None
    address = frontends[0].get('bind_address') or bind_address
    return ('127.0.0.1' if address in _WILDCARDS else address.strip('[]')), frontends[0]['port']


def input_problem(model, base, validate, cert_dir, certificates, bind_address=None):
    """Why these inputs cannot make a configuration (checked on the controller first), or None."""
    if not isinstance(model, dict) or not isinstance(model.get('source'), dict) or not all(
            isinstance(model.get(key), list) for key in ('nodes', 'frontends', 'backends')):
        return ('haproxy_sync_model must be the \'model\' result of portico.k8s.nodeport_info (a dict with source, '
                'nodes, frontends and backends); leave it unset to collect it.')
    if '%s' not in validate:
        return ('haproxy_sync_validate_command must contain %%s, which is replaced by the path of the candidate '
                'file, for example \'haproxy -c -f %%s\' (it is %r).' % validate)
    own = sorted(set(f['address'] for f in model['frontends'] if f.get('address') and f['address'] == bind_address))
    if own:
        return ('haproxy_sync_bind_address %s is the own address of a LoadBalancer service: the shared frontends '
                'would bind it too. Give the load balancer a bind address outside the address pools.' % own[0])
    taken = taken_ports(base, model)
    if taken:
        return ('The base template binds port(s) %s, which generated frontends also want. Add them to '
                'haproxy_sync_reserved_ports, so services that ask for them are excluded (or moved, with '
                'haproxy_sync_port_conflict: allocate).' % ', '.join('%d' % port for port in taken))
    wanted = model.get('certificates') or []
    if wanted:
        if not _CERT_DIR.match(cert_dir or ''):
            return ('The model terminates TLS, so haproxy_sync_cert_dir must be an absolute path of letters, digits '
                    'and ._/- (it is %r).' % (cert_dir,))
        missing = [c.get('secret', c.get('file')) for c in wanted if c.get('file') not in (certificates or {})]
        if missing:
            return ('The model terminates TLS with %d certificate(s), but %s came without this run\'s sealed '
                    'bundle: a haproxy_sync_model passed in cannot carry them. Leave haproxy_sync_model unset so '
                    'the role collects the model.' % (len(wanted), ', '.join(str(m) for m in missing[:10])))
    return None
