# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fields of Kubernetes objects that Portico reads, declared once, and the decoder that reads only them.

Private to this collection. Everything Portico reads from a Node, Service, EndpointSlice or Secret
(the slim records of _cluster, the fingerprints of _fingerprint, the watch events of the event
source) is named here, and nothing else is kept: a list page, a snapshot or a watch event is
decoded into plain dicts and lists that hold only these fields, as they were sent (key order
kept); every other field is skipped.

With msgspec installed, a body is decoded straight into that shape, skipping the rest of every
object without building it. Without msgspec, or when msgspec refuses a body (a field of another
type than the one declared, JSON that only Python's json module reads), json.loads reads the body
and the same fields are copied out of it. Both give the same records and the same errors.
USE_MSGSPEC = False, or the environment variable PORTICO_K8S_DECODER=json, forces the
standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc
import json
import os
import re
from typing import Any, List, Optional, TypedDict

try:
    import msgspec
    HAS_MSGSPEC = True
except ImportError:
    HAS_MSGSPEC = False

# A value kept as it was sent, whatever it holds.
KEEP = 'keep'

# Each declaration is a dict of field name -> KEEP, a dict (an object with those fields), or a
# list of one declaration (an array of such values). A field that is missing stays missing.
_OBJECT_META = {'name': KEEP, 'namespace': KEEP, 'resourceVersion': KEEP}

NODE = {
    'metadata': dict(_OBJECT_META, labels=KEEP, deletionTimestamp=KEEP),
    'spec': {'unschedulable': KEEP, 'taints': [{'key': KEEP}]},
    'status': {'conditions': [{'type': KEEP, 'status': KEEP}], 'addresses': [{'type': KEEP, 'address': KEEP}]},
}

SERVICE = {
    'metadata': dict(_OBJECT_META, uid=KEEP, creationTimestamp=KEEP, labels=KEEP, annotations=KEEP, managedFields=[{
        # who last wrote status.loadBalancer.ingress (Portico's own writes must not count as changes)
        'manager': KEEP, 'subresource': KEEP,
        'fieldsV1': {'f:status': {'f:loadBalancer': {'f:ingress': KEEP}}},
    }]),
    'spec': {
        'type': KEEP,
        'ports': [{'name': KEEP, 'protocol': KEEP, 'port': KEEP, 'nodePort': KEEP}],
        'externalTrafficPolicy': KEEP, 'healthCheckNodePort': KEEP, 'loadBalancerClass': KEEP,
        'loadBalancerIP': KEEP, 'ipFamilies': KEEP,
    },
    'status': {'loadBalancer': {'ingress': [{'ip': KEEP, 'hostname': KEEP, 'ipMode': KEEP,
                                             'ports': [{'port': KEEP, 'protocol': KEEP}]}]}},
}

ENDPOINT_SLICE = {
    'metadata': dict(_OBJECT_META, labels=KEEP),
    'endpoints': [{'conditions': {'ready': KEEP}, 'nodeName': KEEP}],
}

# Only snapshots hold Secrets: the API path reads each one whole, by name.
SECRET = {'metadata': dict(_OBJECT_META), 'type': KEEP, 'data': KEEP}

# What a watch sends besides objects: the Status of an ERROR event.
STATUS = {'code': KEEP, 'message': KEEP, 'metadata': {'resourceVersion': KEEP}}

BY_RESOURCE = {'nodes': NODE, 'services': SERVICE, 'endpointslices': ENDPOINT_SLICE}
_LIST_META = {'resourceVersion': KEEP, 'continue': KEEP, 'remainingItemCount': KEEP}


def merged(*declarations):
    """One declaration with the fields of all; ValueError if two declare one field differently."""
    out = {}
    for declaration in declarations:
        for key, value in declaration.items():
            if key not in out:
                out[key] = value
            elif isinstance(out[key], dict) and isinstance(value, dict):
                out[key] = merged(out[key], value)
            elif isinstance(out[key], list) and isinstance(value, list):
                out[key] = [merged({key: out[key][0]}, {key: value[0]})[key]]
            elif out[key] != value:
                raise ValueError('field %s is declared as %r and as %r' % (key, out[key], value))
    return out


def list_page(item):
    """A list answer (NodeList, ServiceList ...) whose items hold the fields of item."""
    return {'kind': KEEP, 'metadata': _LIST_META, 'items': [item]}


# kubectl get nodes,services,endpointslices -A -o json (and the Secrets tls-secret annotations name)
SNAPSHOT = {'kind': KEEP, 'items': [merged({'kind': KEEP}, NODE, SERVICE, ENDPOINT_SLICE, SECRET)]}


def watch_event(item):
    """One line of a watch: its type and the object (or the Status of an ERROR)."""
    return {'type': KEEP, 'object': merged(item, STATUS)}


def project(value, declaration):
    """The declared fields of a value decoded whole, in the order they were sent.

    A value of another shape than the one declared is kept as it is: the readers of the
    fields (the slim records) treat it as today, as missing.
    """
    if declaration == KEEP:
        return value
    if isinstance(declaration, list):
        if not isinstance(value, list):
            return value
        inner = declaration[0]
        return [project(entry, inner) for entry in value]
    if not isinstance(value, dict):
        return value
    return dict((key, project(entry, declaration[key])) for key, entry in value.items() if key in declaration)


_NOT_NAME = re.compile(r'[^0-9A-Za-z_]')


def _decoded_type(declaration, name):
    """The msgspec type of a declaration: TypedDicts that may lack any field; null is kept as None."""
    if declaration == KEEP:
        return Any
    if isinstance(declaration, list):
        return Optional[List[_decoded_type(declaration[0], name + '_entry')]]
    fields = dict((key, _decoded_type(value, '%s_%s' % (name, _NOT_NAME.sub('_', key))))
                  for key, value in declaration.items())
    return Optional[TypedDict(name, fields, total=False)]


USE_MSGSPEC = HAS_MSGSPEC and os.environ.get('PORTICO_K8S_DECODER', '') != 'json'


class Reader:
    """Decodes JSON bodies (bytes) into the declared fields; whole=True keeps everything.

    Raises ValueError when the body is not JSON, as json.loads does.
    """

    def __init__(self, declaration, name, whole=False):
        self.declaration = None if whole else declaration
        self._decoder = None
        if HAS_MSGSPEC and not whole:
            self._decoder = msgspec.json.Decoder(_decoded_type(declaration, name))

    def __call__(self, data, projected=True):
        """The body's declared fields; projected=False: when json.loads reads the body, its document
        as it is, for a reader that itself reads only the declared fields (saves copying them out)."""
        was_enabled = gc.isenabled()
        # the collector's passes over millions of new objects cost more than the parse itself
        gc.disable()
        try:
            if USE_MSGSPEC and self._decoder is not None and _is_utf8(data):
                try:
                    return self._decoder.decode(data)
                except (msgspec.ValidationError, msgspec.DecodeError):
                    pass  # what json.loads reads (or refuses), it reads as it does without msgspec
            document = json.loads(data)
            return document if self.declaration is None or not projected else project(document, self.declaration)
        except RecursionError:
            raise ValueError('nested too deeply')
        finally:
            if was_enabled:
                gc.enable()


def _is_utf8(data):
    """msgspec skips strings it does not keep without checking them; json.loads refuses bad UTF-8 anywhere."""
    if isinstance(data, str) or data.isascii():
        return True
    try:
        data.decode('utf-8')
        return True
    except UnicodeDecodeError:
        return False


_READERS = {}


def reader(what, whole=False):
    """The Reader of one kind of body: a resource's list pages ('nodes' ...), 'snapshot', or
    'watch:RESOURCE' (its watch events). Built once per process."""
    key = (what, whole)
    if key not in _READERS:
        if what == 'snapshot':
            declaration = SNAPSHOT
        elif what.startswith('watch:'):
            declaration = watch_event(BY_RESOURCE[what[len('watch:'):]])
        else:
            declaration = list_page(BY_RESOURCE[what])
        _READERS[key] = Reader(declaration, 'Portico_' + _NOT_NAME.sub('_', what), whole)
    return _READERS[key]
