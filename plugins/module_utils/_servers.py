# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server changes a running HAProxy takes through its runtime API, without a reload.

Private to this collection; plain functions, used by the haproxy_config module on the load
balancer. ``plan`` compares the installed file with the new one: when they differ only in
server lines (a node joins, leaves, starts or stops draining, a Local-policy backend's node set
moves), it returns the changes; anything else is a reason to reload. ``commands`` turns a change
into runtime API commands, ``read_state`` parses ``show servers state``, and ``disagreements``
compares what HAProxy runs with what a file says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import re

from ansible_collections.portico.k8s.plugins.module_utils._haproxy import MARKER

# Balances HAProxy 2.6 can add servers to at runtime; a hash also needs "hash-type consistent".
# Not "first": it picks the lowest server id, and a server added at runtime gets the lowest free id
# where a reload numbers servers in file order, so the two would pick different servers.
_DYNAMIC_BALANCES = ('roundrobin', 'leastconn', 'random')
_SERVER = re.compile(r'    server ([a-z0-9][a-z0-9.-]*) (\[[0-9a-f:.]+\]|[0-9.]+|[a-z0-9][a-z0-9.-]*):([0-9]{1,5})((?: [ -~]*)?)\Z')
_IP = re.compile(r'\[[0-9a-f:.]+\]\Z|[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z')
_SECTION = re.compile(r'(frontend|backend) (\S+)\Z')
# Admin state bits of "show servers state" (HAProxy's SRV_ADMF_*): forced maintenance, forced drain.
FORCED_MAINT, FORCED_DRAIN = 0x01, 0x08
_STATE_FIELDS = ('be_id', 'be_name', 'srv_id', 'srv_name', 'srv_addr', 'srv_op_state', 'srv_admin_state',
                 'srv_uweight', 'srv_iweight', 'srv_time_since_last_change', 'srv_check_status',
                 'srv_check_result', 'srv_check_health', 'srv_check_state', 'srv_agent_state', 'bk_f_forced_id',
                 'srv_f_forced_id', 'srv_fqdn', 'srv_port')
# The runtime API's answers that mean done; anything else is a refusal.
_DONE = {'add': 'New server registered.', 'del': 'Server deleted.'}
STILL_CONNECTED = 'still has connections'


_TARGET = re.compile(r'[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9.-]*\Z')


def is_target(text):
    """Whether text is a '<backend>/<server>' of names Portico writes."""
    return isinstance(text, str) and bool(_TARGET.match(text))


class StateError(ValueError):
    """HAProxy's answer is not the "show servers state" format this module reads."""


def split(text):
    """(base, generated part) of a whole haproxy.cfg; the generated part is '' when there is none."""
    at = text.find('\n' + MARKER)
    if at < 0:
        return text, ''
    # the generated part starts with the rule line just before the marker
    start = text.rfind('\n', 0, at) + 1
    return text[:start], text[start:]


def read_backends(generated):
    """(skeleton, backends) of a generated part.

    skeleton: every line but comments and server lines, so two files with the same skeleton
    differ in servers only. backends: {name: {'balance', 'consistent', 'servers': {name: server}}}
    where a server is {'address', 'port', 'options', 'weight'} and options leave the weight out.
    """
    skeleton, backends, current = [], {}, None
    for line in generated.split('\n'):
        if current is not None and line.startswith('    server '):
            match = _SERVER.match(line)
            if not match:
                raise ValueError('a server line Portico does not write: %r' % line[:80])
            options = match.group(4)
            weight = 1
            if ' weight 0' in options:
                options, weight = options.replace(' weight 0', '', 1), 0
            current['servers'][match.group(1)] = dict(address=match.group(2), port=int(match.group(3)),
                                                      options=options, weight=weight)
            continue
        if not line or line.startswith('#'):
            continue
        skeleton.append(line)
        section = _SECTION.match(line)
        if section:
            current = None
            if section.group(1) == 'backend':
                current = backends[section.group(2)] = dict(balance=None, consistent=False, servers={})
        elif current is not None and line.startswith('    balance '):
            current['balance'] = line.split()[1]
        elif current is not None and line == '    hash-type consistent':
            current['consistent'] = True
    return skeleton, backends


def parse(text):
    """A whole haproxy.cfg read once for plan and the checks: {'base', 'generated' (whether it has
    a generated part), 'skeleton', 'backends' (see read_backends), 'error' (a line it cannot read)}."""
    base, generated = split(text)
    try:
        skeleton, backends = read_backends(generated)
        error = None
    except ValueError as exc:
        skeleton, backends, error = None, {}, str(exc)
    return dict(base=base, generated=bool(generated), skeleton=skeleton, backends=backends, error=error)


def _takes_servers(backend):
    return backend['balance'] in _DYNAMIC_BALANCES or backend['consistent']


def plan(current, candidate):
    """(changes, None) when the two whole files differ in servers only, else (None, why a reload).

    A change is {'action': 'add' | 'remove' | 'weight', 'backend', 'server'} and, for an added
    server, its 'address', 'port', 'options' and 'weight'. No changes at all means the files differ
    in comments only (say, the count of excluded services): nothing HAProxy serves changes.
    current and candidate are the files' text, or what parse made of it.
    """
    old_file, new_file = (f if isinstance(f, dict) else parse(f) for f in (current, candidate))
    if not old_file['generated']:
        return None, 'the current file has no generated part'
    if old_file['base'] != new_file['base']:
        return None, 'the base configuration changed'
    error = old_file['error'] or new_file['error']
    if error:
        return None, 'the current file holds %s' % error
    old, new = old_file['backends'], new_file['backends']
    if old_file['skeleton'] != new_file['skeleton']:
        return None, 'frontends, backends or their settings changed (%s)' % _first_difference(
            old_file['skeleton'], new_file['skeleton'])
    changes = []
    for name, backend in new.items():
        before, after = old[name]['servers'], backend['servers']
        if before == after:
            continue
        if not _takes_servers(backend):
            return None, 'backend %s balances by %s, which cannot take servers at runtime' % (name, backend['balance'])
        for server in before:
            if server not in after:
                changes.append(dict(action='remove', backend=name, server=server))
        for server, wanted in after.items():
            had = before.get(server)
            if had is None:
                if not _IP.match(wanted['address']):
                    return None, ('node %s has the DNS name %s, which HAProxy 2.6 cannot add at runtime'
                                  % (server, wanted['address']))
                changes.append(dict(action='add', backend=name, server=server, address=wanted['address'],
                                    port=wanted['port'], options=wanted['options'], weight=wanted['weight']))
            elif (had['address'], had['port'], had['options']) != (wanted['address'], wanted['port'], wanted['options']):
                return None, 'server %s of backend %s changed its address or settings' % (server, name)
            elif had['weight'] != wanted['weight']:
                changes.append(dict(action='weight', backend=name, server=server, weight=wanted['weight']))
    return changes, None


def _first_difference(old, new):
    """Where two skeletons first differ, in words: a section that is new or gone, or the one that changed."""
    section = None
    for number in range(max(len(old), len(new))):
        a, b = (old[number] if number < len(old) else None), (new[number] if number < len(new) else None)
        if a != b:
            if b is not None and _SECTION.match(b) and b not in old:
                return '%s is new' % b
            if a is not None and _SECTION.match(a) and a not in new:
                return '%s is gone' % a
            return 'in %s' % section if section else 'before the first section'
        if _SECTION.match(a):
            section = a
    return 'in their order'


def commands(change):
    """The runtime API commands of one change, in order."""
    target = '%s/%s' % (change['backend'], change['server'])
    if change['action'] == 'weight':
        return ['set server %s weight %d' % (target, change['weight'])]
    if change['action'] == 'remove':
        # a server leaves maintenance only with its connections finished; del refuses until then
        return ['set server %s state maint' % target, 'del server %s' % target]
    # a new server starts in maintenance with its health checks off
    options = change['options'] + (' weight 0' if change['weight'] == 0 else '')
    return ['add server %s %s:%d%s' % (target, change['address'], change['port'], options),
            'enable health %s' % target, 'set server %s state ready' % target]


def refusal(command, answer):
    """None when the runtime API's answer to command means done, else the answer (one line)."""
    text = answer.strip()
    wanted = _DONE.get(command.split(' ', 1)[0], '')
    if text == wanted:
        return None
    return ' '.join(text.split()) or 'no answer'


def read_state(text):
    """{backend: {server: {'address', 'fqdn', 'port', 'admin', 'weight'}}} of a "show servers state" answer."""
    lines = text.split('\n')
    if not lines or lines[0].strip() != '1':
        raise StateError('"show servers state" did not answer in format 1 (%r)' % lines[0][:40])
    state = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith('#'):
            continue
        fields = line.split(' ')
        if len(fields) < len(_STATE_FIELDS):
            raise StateError('"show servers state" gave a short line: %r' % line[:80])
        row = dict(zip(_STATE_FIELDS, fields))
        try:
            state.setdefault(row['be_name'], {})[row['srv_name']] = dict(
                address=row['srv_addr'], fqdn=row['srv_fqdn'], port=int(row['srv_port']),
                admin=int(row['srv_admin_state']), weight=int(row['srv_uweight']))
        except ValueError:
            raise StateError('"show servers state" gave a line this module cannot read: %r' % line[:80])
    return state


def _runs_as(running, server):
    address = server['address']
    if _IP.match(address):
        if running['address'] != address.strip('[]'):
            return 'runs at %s, not %s' % (running['address'], address)
    elif running['fqdn'] != address:
        return 'runs with the name %s, not %s' % (running['fqdn'], address)
    if running['port'] != server['port']:
        return 'runs on port %d, not %d' % (running['port'], server['port'])
    if running['weight'] != server['weight']:
        return 'has weight %d, not %d' % (running['weight'], server['weight'])
    if running['admin'] & (FORCED_MAINT | FORCED_DRAIN):
        return 'is in maintenance or drain'
    return None


def leaving(running, backends):
    """[(backend, server)] of servers HAProxy runs in maintenance that the file does not have:
    servers removed at runtime whose last connections have not finished yet."""
    found = []
    for name, backend in backends.items():
        for server, state in sorted((running.get(name) or {}).items()):
            if server not in backend['servers'] and state['admin'] & FORCED_MAINT:
                found.append((name, server))
    return found


def disagreements(running, backends, limit=5):
    """Where what HAProxy runs (read_state) differs from the backends of a file (read_backends), at
    most limit of them; [] when it runs exactly that, apart from servers still leaving."""
    found = []
    for name, backend in backends.items():
        servers = running.get(name)
        if servers is None:
            found.append('backend %s does not run' % name)
            continue
        for server, wanted in backend['servers'].items():
            state = servers.get(server)
            problem = 'is missing' if state is None else _runs_as(state, wanted)
            if problem:
                found.append('server %s/%s %s' % (name, server, problem))
        for server, state in servers.items():
            if server not in backend['servers'] and not state['admin'] & FORCED_MAINT:
                found.append('server %s/%s runs but is not in the file' % (name, server))
        if len(found) >= limit:
            break
    return found[:limit]


def sessions(stat, backends):
    """{server name: current sessions, summed over the given backends} of a "show stat" CSV answer."""
    rows = stat.split('\n')
    if not rows or not rows[0].startswith('# pxname,svname,'):
        raise StateError('"show stat" did not answer with its CSV header (%r)' % rows[0][:40])
    wanted, found = set(backends), {}
    try:
        for row in csv.DictReader([rows[0][2:]] + [r for r in rows[1:] if r.strip()]):
            if row.get('pxname') not in wanted or row.get('svname') in ('FRONTEND', 'BACKEND'):
                continue
            found[row['svname']] = found.get(row['svname'], 0) + int(row.get('scur') or 0)
    except (csv.Error, ValueError, TypeError) as exc:
        raise StateError('"show stat" gave a line this module cannot read (%s)' % exc)
    return found


def idle(draining, current_sessions):
    """The names of draining nodes no connection uses any more (absent from HAProxy counts as none)."""
    return [name for name in draining if not current_sessions.get(name)]
