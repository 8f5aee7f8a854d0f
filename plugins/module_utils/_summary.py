# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A routing model as the controller's tasks read it: from its JSON text, and in lines for the operator.

Private to this collection; plain functions, used by the sync_summary and drain_record filters.
The role keeps the model as JSON text (haproxy_sync_model_json): these read it once, in Python,
where a Jinja expression would parse it again for every reference.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# a model passed in may lack its source (the drain record then names no cluster)
_NEEDED = ('nodes', 'frontends', 'backends')


def read_model(value, what='the model'):
    """The model as a dict, from the dict or its JSON text; ValueError saying what is wrong."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode('utf-8', 'replace')
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError('%s is text but not JSON: %s' % (what, exc))
    if not isinstance(value, dict):
        raise ValueError('%s must be the model of portico.k8s.nodeport_info (a dict, or its JSON text), not %s'
                         % (what, type(value).__name__))
    missing = [key for key in _NEEDED if key not in value]
    if missing:
        raise ValueError('%s is not a model of portico.k8s.nodeport_info: it has no %s' % (what, ', '.join(missing)))
    return value


def _list(model, key):
    return [entry for entry in model.get(key) or [] if isinstance(entry, dict)]


def _excluded(entry):
    # a port that is missing (or empty) means the whole service
    return '%s %s: %s' % (entry.get('service'), entry.get('port') or 'all ports', entry.get('reason'))


def summary(model, load_balancers=None):
    """What the load balancers will serve, one line per item: the collect step prints it."""
    out = {} if load_balancers is None else {'load_balancers': load_balancers}
    out.update({
        'exposed': ['%s on port %s' % (f.get('service'), f.get('port')) for f in _list(model, 'frontends')],
        'excluded_services': [_excluded(e) for e in _list(model, 'excluded_services')],
        'warnings': [_excluded(e) for e in _list(model, 'warnings')],
        'nodes_in': [n.get('name') for n in _list(model, 'nodes')],
        'nodes_draining': [n.get('name') for n in _list(model, 'draining_nodes')],
        'nodes_out': ['%s: %s' % (n.get('name'), n.get('reason')) for n in _list(model, 'excluded_nodes')],
        'certificates': ['%s valid until %s' % (c.get('secret'), c.get('not_after')) for c in _list(model, 'certificates')],
        'addresses': ['%s at %s' % (lb.get('service'), lb['address']) for lb in _list(model, 'load_balancers')
                      if lb.get('address')],
    })
    return out
