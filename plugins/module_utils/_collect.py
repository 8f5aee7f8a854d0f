# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options in, routing model out: the one path shared by the module and the lookup.

Private to this collection. ``get`` reads an option by name from either an
AnsibleModule's params or a lookup's get_option, so both plugins behave the same.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc
import json
import time

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.portico.k8s.plugins.module_utils._addresses import (
    DEFAULT_CLASS,
    address_pools,
    load_balancer_class,
)
from ansible_collections.portico.k8s.plugins.module_utils._client import CONNECTION_OPTIONS, KubeError
from ansible_collections.portico.k8s.plugins.module_utils._cluster import (
    ServiceFilter,
    read_api,
    read_snapshot,
)
from ansible_collections.portico.k8s.plugins.module_utils._annotations import DEFAULT_PREFIX, check_prefix
from ansible_collections.portico.k8s.plugins.module_utils._drain import (
    DrainStateError,
    check_state,
    read_state_file,
    state_for,
)
from ansible_collections.portico.k8s.plugins.module_utils._model import allocate_range, build_model
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue, port_number

ADDRESS_TYPES = ['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS', 'ExternalDNS']


def model_argument_spec():
    """The options that shape the model, shared by the module and the lookup docs."""
    return dict(
        snapshot=dict(type='path'),
        namespaces=dict(type='list', elements='str', default=[]),
        label_selector=dict(type='str'),
        filter=dict(type='str'),
        address_types=dict(type='list', elements='str', default=['InternalIP', 'ExternalIP'],
                           choices=ADDRESS_TYPES),
        frontend_port=dict(type='str', default='service_port', choices=['service_port', 'node_port']),
        api_timeout=dict(type='int', default=30),
        page_size=dict(type='int', default=500),
        allow_no_nodes=dict(type='bool', default=False),
        node_selector=dict(type='str'),
        include_control_plane=dict(type='bool', default=False),
        exclude_cordoned=dict(type='bool', default=False),
        address_family=dict(type='str', default='any', choices=['any', 'ipv4', 'ipv6']),
        check_kube_proxy=dict(type='bool', default=False),
        backend_subset_size=dict(type='int', default=0),
        drain_state=dict(type='dict'),
        drain_state_file=dict(type='path'),
        drain_seconds=dict(type='int', default=0),
        annotation_prefix=dict(type='str', default=DEFAULT_PREFIX),
        expose_by_default=dict(type='bool', default=True),
        port_conflict=dict(type='str', default='exclude', choices=['exclude', 'allocate']),
        allocate_range=dict(type='str', default='20000-29999'),
        reserved_ports=dict(type='list', elements='int', default=[]),
        metrics_ports=dict(type='list', elements='int', default=[]),
        address_pools=dict(type='list', elements='dict', default=[]),
        load_balancer_class=dict(type='str', default=DEFAULT_CLASS),
        default_load_balancer=dict(type='bool', default=False),
    )


# Options the model reads (the rest choose what is read).
MODEL_OPTIONS = ('address_types', 'address_family', 'frontend_port', 'include_control_plane',
                 'exclude_cordoned', 'check_kube_proxy', 'backend_subset_size', 'drain_state',
                 'drain_seconds', 'annotation_prefix', 'expose_by_default', 'port_conflict',
                 'allocate_range', 'reserved_ports', 'metrics_ports', 'address_pools', 'load_balancer_class',
                 'default_load_balancer')


def model_text(model, hidden=()):
    """The model as JSON text, with the hidden values (a module's no_log values) masked as Ansible
    masks them in a dict result.

    Ansible then checks one string instead of walking every value of the model. Only when a hidden
    value shows in the text (as it is, or as JSON escapes it) is the model masked value by value.
    """
    text = json.dumps(model, separators=(',', ':'))
    hidden = [value for value in hidden if value]
    if _shows(text, hidden):
        text = json.dumps(remove_values(model, set(hidden)), separators=(',', ':'))
        # Ansible masks values, not keys or JSON's own words: masking the text itself would break it
        if _shows(text, hidden):
            raise ValueError('a no_log value (such as api_key) is so short that it is part of the model\'s JSON '
                             'text itself (a key, true, null, punctuation); use model_format=dict')
    return text


def _shows(text, hidden):
    return any(value in text or json.dumps(value)[1:-1] in text for value in hidden)


def collect_model(get, warn=None):
    """Read the cluster and build the model; raises KubeError with an operator's message."""
    return collect(get, warn)[0]


def _drain_state(get):
    """(the previous run's drain state or None, what it is called in messages); KubeError if unusable."""
    path = get('drain_state_file')
    if path and get('drain_state') is not None:
        raise KubeError('drain_state and drain_state_file are mutually exclusive: give the state, or the file '
                        'that holds it')
    try:
        if path:
            return read_state_file(path), 'the drain state file %s' % path
        if get('drain_state') is not None:
            return check_state(get('drain_state')), 'drain_state'
    except DrainStateError as exc:
        raise KubeError(str(exc))
    return None, 'drain_state'


def collect(get, warn=None):
    """(model, bundles): the model, and {file: PEM bytes} of the TLS bundles its certificates name.

    The bundles hold private keys: they are never part of the model, and never written here.
    warn(text) is told what the operator should know that does not stop the run.
    """
    # The collector's passes over the records being built cost more than building them; nothing
    # here makes reference cycles, so it is paused until the model is made.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _collect(get, warn)
    finally:
        if was_enabled:
            gc.enable()


def _collect(get, warn):
    # When reading began: the model is at least this fresh (the load balancers compare it).
    read_at = round(time.time(), 3)
    for name in ('api_timeout', 'page_size'):
        if get(name) is not None and get(name) < 1:
            raise KubeError('%s must be at least 1, got %s' % (name, get(name)))
    if get('backend_subset_size') is not None and get('backend_subset_size') < 0:
        raise KubeError('backend_subset_size must be 0 (off) or more, got %s' % get('backend_subset_size'))
    try:
        check_prefix(get('annotation_prefix') or DEFAULT_PREFIX)
        allocate_range(get('allocate_range'))
        for port in get('reserved_ports') or []:
            port_number(port, 'reserved port')
        for port in get('metrics_ports') or []:
            port_number(port, 'metrics port')
        address_pools(get('address_pools'))
        load_balancer_class(get('load_balancer_class'))
    except InvalidValue as exc:
        raise KubeError(str(exc))
    drain_state, drain_what = _drain_state(get)
    service_filter = ServiceFilter(get('namespaces'), get('label_selector'), get('filter'),
                                   get('annotation_prefix') or DEFAULT_PREFIX)
    if get('snapshot'):
        nodes, services, slices, source, secrets = read_snapshot(get('snapshot'), service_filter,
                                                                 get('node_selector'))
    else:
        settings = dict((name, get(name)) for name in CONNECTION_OPTIONS)
        nodes, services, slices, source, secrets = read_api(settings, service_filter, get('node_selector'),
                                                            timeout=get('api_timeout') or 30,
                                                            page_size=get('page_size') or 500)
    source['services_seen'] = service_filter.seen
    source['read_at'] = read_at
    options = dict((name, get(name)) for name in MODEL_OPTIONS)
    options['drain_state'], note = state_for(drain_state, source, drain_what)
    if note and warn is not None:
        warn(note)
    options['now'] = int(time.time())
    facts = dict((key, value.get('facts') or {'error': value.get('error')}) for key, value in secrets.items())
    model = build_model(nodes, services, options, source, slices, facts)
    if model['backends'] and not model['nodes'] and not get('allow_no_nodes'):
        reasons = '; '.join('%s: %s' % (n['name'], n['reason']) for n in model['excluded_nodes'][:10])
        raise KubeError('no node is eligible to receive traffic (%d nodes, all excluded%s), so every '
                        'backend would be empty; nothing was changed. Set allow_no_nodes to accept this.'
                        % (len(model['excluded_nodes']), ': ' + reasons if reasons else ''))
    bundles = dict((v['facts']['file'], v['bundle']) for v in secrets.values() if 'bundle' in v)
    return model, dict((c['file'], bundles[c['file']]) for c in model['certificates'])
