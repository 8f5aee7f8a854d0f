# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a load balancer serves right now, read without changing anything: its installed file's
generated part, the record beside it (the model's generation, source, counts, when installed),
the state of each server from HAProxy's stats socket (``show stat``, ``show servers state``), and
whether the cluster still gives the same model (drift).

Private to this collection; plain functions, used by the haproxy_status module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import time

from ansible_collections.portico.k8s.plugins.module_utils._metrics import FRONTEND as METRICS_FRONTEND
from ansible_collections.portico.k8s.plugins.module_utils._servers import FORCED_MAINT, StateError, split

STATES = ('UP', 'DOWN', 'DRAIN', 'MAINT')
# The columns of "show stat" the view reads (HAProxy names them in its header line).
_COLUMNS = ('pxname', 'svname', 'status', 'weight', 'check_status', 'check_desc', 'lastchg', 'addr', 'scur')
# A frontend or backend line shown per load balancer at most; the rest are counted.
SHOWN = 40


def read_stat(text):
    """The server rows of a "show stat" CSV answer: [{pxname, svname, status, weight, check_status,
    check_desc, lastchg, addr, scur}] with weight, lastchg and scur as int or None; StateError when
    it is not that CSV. FRONTEND and BACKEND rows are left out."""
    lines = (text or '').split('\n')
    if not lines or not lines[0].startswith('# pxname,svname,'):
        raise StateError('"show stat" did not answer with its CSV header (%r)' % lines[0][:40])
    header = lines[0][2:].rstrip(',').split(',')
    rows = []
    try:
        for fields in csv.reader(line for line in lines[1:] if line.strip()):
            row = dict(zip(header, fields))
            if row.get('svname') in ('FRONTEND', 'BACKEND') or not row.get('pxname') or not row.get('svname'):
                continue
            shown = dict((key, row.get(key, '')) for key in _COLUMNS)
            for key in ('weight', 'lastchg', 'scur'):
                shown[key] = int(shown[key]) if shown[key].isdigit() else None
            rows.append(shown)
    except csv.Error as exc:
        raise StateError('"show stat" gave a line this module cannot read (%s)' % exc)
    return rows


def state_of(status, weight=None, admin=0):
    """UP, DOWN, DRAIN or MAINT of a server from its "show stat" status (UP, DOWN, "UP 1/3" going
    down, "DOWN 1/2" coming up, NOLB, DRAIN, MAINT, "MAINT (via ...)", "no check"), its weight (0 is
    drained: no new connections) and its admin state bits of "show servers state"."""
    text = (status or '').strip().upper()
    if text.startswith('MAINT') or admin & FORCED_MAINT:
        return 'MAINT'
    if text.startswith('DOWN'):
        return 'DOWN'
    if text.startswith(('DRAIN', 'NOLB')) or weight == 0:
        return 'DRAIN'
    if text.startswith(('UP', 'NO CHECK')):
        return 'UP'
    return 'DOWN'


def generated(text):
    """(frontends, backends) of a haproxy.cfg's generated part, in file order: frontends as
    [{name, binds}], backends as {name: [server names]}; plus the metrics frontend, if any, as
    (frontends, backends, metrics binds)."""
    base, part = split(text or '')
    frontends, backends, current, kind = [], {}, None, None
    for line in part.split('\n'):
        if line.startswith('frontend '):
            kind, current = 'frontend', {'name': line.split()[1], 'binds': []}
            frontends.append(current)
        elif line.startswith('backend '):
            kind, current = 'backend', line.split()[1]
            backends[current] = []
        elif line and not line.startswith((' ', '#')):
            kind = current = None
        elif kind == 'frontend' and line.startswith('    bind '):
            current['binds'].append(line.split()[1])
        elif kind == 'backend' and line.startswith('    server '):
            backends[current].append(line.split()[1])
    metrics, inside = [], False
    for line in base.split('\n'):
        if line.startswith(('frontend ', 'backend ', 'listen ', 'userlist ', 'global', 'defaults')):
            inside = line == 'frontend ' + METRICS_FRONTEND
        elif inside and line.startswith('    bind '):
            metrics.append(line.split()[1])
    return frontends, backends, metrics


def servers(rows, backends, running=None):
    """{backend: [{server, state, status, check, address, since, sessions, leaving}]} of the file's
    backends (others are not Portico's), from read_stat rows and, when given, the admin states of
    "show servers state" (_servers.read_state). A server HAProxy runs that the file does not have
    is one leaving (removed, finishing its connections); one of the file that HAProxy does not run
    is MISSING."""
    running = running or {}
    found = {}
    for row in rows:
        if row['pxname'] not in backends:
            continue
        admin = ((running.get(row['pxname']) or {}).get(row['svname']) or {}).get('admin') or 0
        entry = {'server': row['svname'], 'state': state_of(row['status'], row['weight'], admin),
                 'status': row['status'], 'check': ' '.join(p for p in (row['check_status'], row['check_desc']) if p),
                 'address': row['addr'], 'since': row['lastchg'], 'sessions': row['scur'],
                 'leaving': row['svname'] not in backends[row['pxname']]}
        found.setdefault(row['pxname'], []).append(entry)
    for name, wanted in backends.items():
        seen = set(entry['server'] for entry in found.get(name, []))
        for server in wanted:
            if server not in seen:
                found.setdefault(name, []).append({'server': server, 'state': 'MISSING', 'status': 'not running',
                                                   'check': '', 'address': '', 'since': None, 'sessions': None,
                                                   'leaving': False})
    return dict((name, found.get(name, [])) for name in backends)


def tally(by_backend):
    """{UP, DOWN, DRAIN, MAINT, MISSING: count} over every server of the file (leaving ones not counted)."""
    counts = dict((state, 0) for state in STATES + ('MISSING',))
    for entries in by_backend.values():
        for entry in entries:
            if not entry['leaving']:
                counts[entry['state']] = counts.get(entry['state'], 0) + 1
    return counts


def without_up(by_backend):
    """The backends of which no server is UP (traffic to them fails), sorted."""
    return sorted(name for name, entries in by_backend.items()
                  if not any(e['state'] == 'UP' for e in entries if not e['leaving']))


def drift(recorded, current):
    """{'state': 'none' | 'changed' | 'unknown', 'message'}: whether the cluster gives now the model
    the load balancer serves. recorded: the 'serves' record beside its file; current: {generation,
    counts} of a model collected now (or its summary, see current_counts), or {'error': why} when the
    cluster could not be read."""
    recorded = recorded if isinstance(recorded, dict) else {}
    current = current_counts(current)
    if current.get('error') or not current.get('generation'):
        return {'state': 'unknown', 'message': 'the cluster could not be read now (%s)'
                % (current.get('error') or 'no model was collected')}
    if not recorded.get('generation'):
        return {'state': 'unknown', 'message': 'this load balancer records no model generation yet (the next sync '
                                               'records it)', 'current_generation': current['generation']}
    if recorded['generation'] == current['generation']:
        return {'state': 'none', 'message': 'none: the cluster gives the same model now (generation %s)'
                % current['generation'], 'current_generation': current['generation']}
    before, after = recorded.get('counts') or {}, current.get('counts') or {}
    moved = ['%s %s -> %s' % (key.replace('_', ' '), before[key], after[key]) for key in sorted(after)
             if key in before and before[key] != after[key]]
    shown = ' (%s)' % ', '.join(moved) if moved else ''
    return {'state': 'changed', 'current_generation': current['generation'],
            'message': 'the cluster changed since this was installed: it gives generation %s now, this load balancer '
                       'serves %s%s; the next sync changes it' % (current['generation'], recorded['generation'], shown)}


# The names of the model's summary (nodeport_info) as the record beside the file counts them.
_SUMMARY = (('frontends', 'frontends'), ('backends', 'backends'), ('nodes', 'eligible_nodes'),
            ('draining_nodes', 'draining_nodes'), ('excluded_nodes', 'excluded_nodes'),
            ('excluded_services', 'excluded_services'))


def current_counts(current):
    """{generation, counts, error} of what the cluster gives now, from {generation, counts} or from
    {generation, summary (the model's), error} as playbooks/status.yml passes it."""
    current = dict(current) if isinstance(current, dict) else {}
    summary = current.pop('summary', None)
    if 'counts' not in current and isinstance(summary, dict):
        current['counts'] = dict((mine, summary[theirs]) for theirs, mine in _SUMMARY if theirs in summary)
    return current


def when(stamp, now=None):
    """'2026-01-01 10:00:00 UTC (12 minutes ago)' of a time, or 'an unknown time'."""
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return 'an unknown time'
    now = time.time() if now is None else now
    try:
        text = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(stamp))
    except (ValueError, OverflowError, OSError):
        return 'an unknown time'
    age = int(now - stamp)
    if age < 0:
        return text
    for size, unit in ((86400, 'day'), (3600, 'hour'), (60, 'minute'), (1, 'second')):
        if age >= size or size == 1:
            count = age // size
            return '%s (%d %s%s ago)' % (text, count, unit, '' if count == 1 else 's')
    return text


def source_text(source):
    """'the Kubernetes API https://... at resourceVersion 4711, read 2026-...' of a recorded source."""
    source = source if isinstance(source, dict) else {}
    if source.get('kind') == 'snapshot':
        words = 'the cluster snapshot %s' % source.get('snapshot')
    elif source.get('server'):
        words = 'the Kubernetes API %s' % source['server']
    else:
        return 'an unknown cluster state'
    if source.get('resource_version'):
        words += ' at resourceVersion %s' % source['resource_version']
    if source.get('read_at') is not None:
        words += ', read %s' % when(source['read_at'])
    return words


def _many(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


def _server_words(entry):
    words = '%s %s' % (entry['server'], entry['state'] if not entry['leaving'] else 'leaving (%s)' % entry['state'])
    details = [part for part in (entry['check'] if entry['state'] != 'UP' else '',
                                 '%ds' % entry['since'] if entry['since'] is not None and entry['state'] != 'UP' else '')
               if part]
    return words + (' (%s)' % ', '.join(details) if details else '')


def lines(name, path, state, frontends, by_backend, metrics, found_drift, socket_problem=None, now=None):
    """The status view of one load balancer, as lines an operator reads."""
    serves = state.get('serves') if isinstance(state.get('serves'), dict) else {}
    counts = serves.get('counts') or {}
    servers_total = sum(len([e for e in entries if not e['leaving']]) for entries in by_backend.values())
    out = ['%s: %s serves %s, %s, %s%s; installed %s' % (
        name, path, _many(len(frontends), 'frontend'), _many(len(by_backend), 'backend'),
        _many(servers_total, 'server'),
        ' (model: %s, %d draining)' % (_many(counts.get('eligible_nodes', 0), 'eligible node'),
                                       counts.get('draining_nodes', 0)) if counts else '',
        when(serves.get('installed_at'), now))]
    out.append('model: generation %s, from %s' % (serves.get('generation') or 'unknown', source_text(serves.get('source'))))
    if state.get('unverified'):
        out.append('warning: the installed file was never seen served by a new HAProxy worker (the next sync reloads it)')
    out.append('drift: %s' % found_drift['message'])
    if socket_problem:
        out.append('servers: unknown, the stats socket did not answer (%s)' % socket_problem)
    else:
        counted = tally(by_backend)
        out.append('servers: ' + ', '.join('%d %s' % (counted[s], s) for s in STATES + ('MISSING',)
                                           if counted[s] or s in STATES))
        empty = without_up(by_backend)
        if empty:
            out.append('no server UP in %d backend%s: %s%s' % (len(empty), '' if len(empty) == 1 else 's',
                                                               ', '.join(empty[:10]), ' ...' if len(empty) > 10 else ''))
    if metrics:
        out.append('metrics: %s' % ', '.join('http://%s/metrics' % bind for bind in metrics))
    # backends with a server that is not UP first, then the others, in file order
    order = sorted(by_backend, key=lambda b: all(e['state'] == 'UP' for e in by_backend[b]))
    binds = dict((f['name'], f['binds']) for f in frontends)
    for backend in order[:SHOWN]:
        entries = by_backend[backend]
        where = ' on %s' % ', '.join(binds[backend]) if backend in binds else ''
        shown = ', '.join(_server_words(e) for e in entries[:12]) + (' ...' if len(entries) > 12 else '')
        out.append('%s%s: %s' % (backend, where, shown or 'no servers'))
    if len(order) > SHOWN:
        out.append('... and %d more backends' % (len(order) - SHOWN))
    return out
