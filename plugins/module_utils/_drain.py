# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Graceful removal: a node that leaves the eligible set drains before it goes.

Private to this collection. The previous run's served nodes come back in as ``drain_state``;
a node that was served and no longer is stays in the backends with weight 0 (no new
connections, existing ones go on) until a later run at least ``drain_seconds`` after it left.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
from urllib.parse import urlsplit

from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically
from ansible_collections.portico.k8s.plugins.module_utils._names import (
    InvalidValue,
    node_name,
    server_address,
)

# What to do about a drain state that cannot be used, said once for every such message.
_FIX = ('it is written by the portico.k8s.haproxy_sync role after every run (the nodes the load balancers '
        'served); remove the file (the next run then removes a node that leaves at once instead of draining '
        'it, and records a new state) or point haproxy_sync_drain_state_file (option drain_state_file) at '
        'another file; nothing was changed')


class DrainStateError(ValueError):
    """A drain state that is not one this collection wrote; the message says what to do."""


def _problem(state):
    """Why a parsed drain state is not one this collection writes, or None."""
    if not isinstance(state, dict):
        return 'it holds a JSON %s, not an object with "nodes" and "draining_nodes"' % type(state).__name__
    for key in ('nodes', 'draining_nodes'):
        values = state.get(key, [])
        if not isinstance(values, list):
            return '"%s" is a %s, not a list of nodes' % (key, type(values).__name__)
        for index, entry in enumerate(values):
            try:
                if not isinstance(entry, dict):
                    raise InvalidValue('not an object')
                node_name(entry.get('name'))
                _address(entry.get('address'))
            except InvalidValue as exc:
                return 'entry %d of "%s" is not a node with a name and an address (%s)' % (index, key, exc)
    if state.get('source') is not None and not isinstance(state.get('source'), dict):
        return '"source" is a %s, not the source of a routing model' % type(state['source']).__name__
    return None


# What identifies the cluster in a drain state (not when it was read: an unchanged run writes nothing).
_SOURCE_KEYS = ('kind', 'server', 'snapshot')


def record(model):
    """The drain state to remember once the load balancers serve model: which cluster, and the
    nodes served and draining. The text haproxy_sync_drain_state_file holds (JSON, keys sorted)."""
    source = model.get('source') if isinstance(model.get('source'), dict) else {}
    state = {'source': dict((key, value) for key, value in source.items() if key in _SOURCE_KEYS),
             'nodes': model.get('nodes') or [], 'draining_nodes': model.get('draining_nodes') or []}
    return json.dumps(state, indent=4, sort_keys=True, separators=(',', ': ')) + '\n'


# The drain state file holds no secret, but which nodes a cluster has is this user's business only.
STATE_FILE_MODE = 0o600


def keep_record(path, text, check_mode=False):
    """Keep text (a record()) in the drain state file at path; (changed, the text there before or None).

    An unchanged file is left as it is (only its mode is set to 0600 when it had another); a
    changed one is replaced atomically. A missing directory is made for this user only (0700);
    an existing one keeps its mode. In check mode nothing is touched. DrainStateError says what
    went wrong, naming the file.
    """
    try:
        try:
            with open(path, 'rb') as handle:
                before = handle.read().decode('utf-8', 'replace')
        except (IOError, OSError) as exc:
            if exc.errno != errno.ENOENT:
                raise
            before = None
        same = before == text
        mode_wrong = same and (os.stat(path).st_mode & 0o7777) != STATE_FILE_MODE
        if check_mode or (same and not mode_wrong):
            return not same or mode_wrong, before
        if same:
            os.chmod(path, STATE_FILE_MODE)
            return True, before
        _make_directories(os.path.dirname(path))
        data = text.encode('utf-8')
        replace_atomically(path, lambda out: out.write(data), STATE_FILE_MODE, prefix='.portico-drain-')
        return True, before
    except (IOError, OSError) as exc:
        raise DrainStateError('cannot write the drain state file %s: %s; let this user write it (and its '
                              'directory), or point haproxy_sync_drain_state_file at another file; the '
                              'load balancers took the model, but the file still holds the nodes an '
                              'earlier run served'
                              % (path, exc.strerror or exc))


def _make_directories(directory):
    """Make directory and its missing parents for this user only (os.makedirs gives 0700 to the last alone)."""
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for entry in reversed(missing):
        os.mkdir(entry, 0o700)


def check_state(state, what='drain_state'):
    """state when it has the shape this collection writes; else DrainStateError naming what."""
    problem = _problem(state)
    if problem:
        raise DrainStateError('%s is not a drain state: %s; %s' % (what, problem, _FIX))
    return state


def read_state_file(path):
    """The drain state kept in path (checked), or None when there is no such file yet."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise DrainStateError('cannot read the drain state file %s: %s; let this user read it, or point '
                              'haproxy_sync_drain_state_file (option drain_state_file) at another file; '
                              'nothing was changed' % (path, exc.strerror or exc))
    try:
        state = json.loads(data.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DrainStateError('the drain state file %s is not JSON (%s); %s' % (path, exc, _FIX))
    return check_state(state, 'the drain state file %s' % path)


def cluster_of(source):
    """What identifies the cluster a model (or a drain state) was read from, or None when unknown.

    The API server's URL (scheme, host and port compared without case, no trailing slash), or the
    snapshot file's absolute path.
    """
    source = source if isinstance(source, dict) else {}
    if source.get('kind') == 'api' and isinstance(source.get('server'), str):
        parts = urlsplit(source['server'].strip())
        return ('api', '%s://%s%s' % (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip('/')))
    if source.get('kind') == 'snapshot' and isinstance(source.get('snapshot'), str):
        return ('snapshot', os.path.normpath(os.path.abspath(source['snapshot'])))
    return None


def _cluster_text(cluster):
    if cluster is None:
        return 'an unknown cluster'
    return ('the Kubernetes API %s' if cluster[0] == 'api' else 'the cluster snapshot %s') % cluster[1]


def state_for(state, source, what='drain_state'):
    """(the drain state to use, or None; a warning, or None) for a run that read the cluster at source.

    A state recorded for another cluster is not used: its nodes are not this cluster's. A state
    that does not say (written before the cluster was recorded, or of a model without a source) is
    used, with a warning.
    """
    if state is None:
        return None, None
    recorded, current = cluster_of(state.get('source')), cluster_of(source)
    if recorded is None:
        return state, ('%s does not say which cluster it is about (an older version wrote it); it was used as the '
                       'state of %s, which this run read, and the next run records that' % (what, _cluster_text(current)))
    if recorded != current:
        return None, ('%s is about %s, not %s, which this run read: it was ignored, so a node that left this cluster '
                      'is removed at once instead of draining. Give each cluster a drain state file of its own '
                      '(haproxy_sync_drain_state_file); the next run records this one'
                      % (what, _cluster_text(recorded), _cluster_text(current)))
    return state, None


def _address(text):
    """A stored address back through the allow-list (it is in HAProxy notation)."""
    if isinstance(text, str) and text.startswith('[') and text.endswith(']'):
        return server_address(text[1:-1], 'InternalIP')
    return server_address(text, 'InternalIP' if isinstance(text, str) and text[:1].isdigit() else 'Hostname')


def _entries(values):
    """Valid {name, address, since} entries of a stored list; anything else is dropped."""
    found = {}
    for entry in values if isinstance(values, list) else []:
        try:
            name = node_name(entry.get('name'))
            address = _address(entry.get('address'))
        except (InvalidValue, AttributeError):
            continue
        since = entry.get('since')
        found[name] = {'name': name, 'address': address,
                       'since': since if isinstance(since, int) and not isinstance(since, bool) else None}
    return found


def draining_nodes(drain_state, eligible, now, drain_seconds=0):
    """Nodes served last run but not eligible now, still within their drain, sorted by name."""
    if not isinstance(drain_state, dict):
        return []
    eligible_names = set(node['name'] for node in eligible)
    draining = {}
    for name, entry in _entries(drain_state.get('draining_nodes')).items():
        since = entry['since'] if entry['since'] is not None else now
        if name not in eligible_names and now - since < drain_seconds:
            draining[name] = dict(entry, since=since)
    for name, entry in _entries(drain_state.get('nodes')).items():
        if name not in eligible_names and name not in draining:
            draining[name] = dict(entry, since=now)
    return [draining[name] for name in sorted(draining)]
