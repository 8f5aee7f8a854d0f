# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the model's load balancer status back to the cluster: status.loadBalancer and Events.

Private to this collection. The bodies are built by pure functions; write_status() sends them
through a client with a write(method, path, path_params, body, content_type, query) method.
A failed write is reported and left for the next run: it never undoes the load balancers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import time

from ansible_collections.portico.k8s.plugins.module_utils._addresses import FIELD_MANAGER
from ansible_collections.portico.k8s.plugins.module_utils._client import api_text

REPORTING_CONTROLLER = 'portico.io/haproxy-sync'
ACTIONS = {'AddressAssigned': 'AssignAddress', 'AddressChanged': 'ChangeAddress',
           'AddressReleased': 'ReleaseAddress', 'AddressRefused': 'RefuseAddress', 'AddressNotServed': 'KeepAddress'}
# events.k8s.io/v1 limits: a note of at most 1 kB (bytes), an instance of at most 128 characters
_NOTE_LIMIT = 1024
_INSTANCE_LIMIT = 128


def status_patch(entry):
    """The merge patch of one Service's status: its ingress (or none), only if it is still the version read."""
    return {'metadata': {'resourceVersion': entry['resource_version']},
            'status': {'loadBalancer': {'ingress': entry['ingress'] or None}}}


def event_name(entry):
    """A name made of the Service and its news, so the same news is posted once (409 after).

    A warning's news lasts as long as its reason (event key); an assignment, change or release
    happens once per version of the Service.
    """
    event = entry['event']
    news = event.get('key') or '%s\n%s' % (event['note'], entry.get('resource_version'))
    text = '%s\n%s\n%s' % (entry.get('uid'), event['reason'], news)
    return '%s.portico-%s' % (entry['name'], hashlib.sha256(text.encode('utf-8')).hexdigest()[:16])


def micro_time(now):
    """A MicroTime (RFC 3339 with microseconds, UTC), as eventTime takes it."""
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now)) + '.%06dZ' % int((now % 1) * 1000000)


def event_object(entry, instance, now):
    """The events.k8s.io/v1 Event that tells what happened to one Service's address."""
    event = entry['event']
    regarding = {'apiVersion': 'v1', 'kind': 'Service', 'namespace': entry['namespace'], 'name': entry['name']}
    if entry.get('uid'):
        regarding['uid'] = entry['uid']
    return {
        'apiVersion': 'events.k8s.io/v1',
        'kind': 'Event',
        'metadata': {'name': event_name(entry), 'namespace': entry['namespace']},
        'eventTime': micro_time(now),
        'reportingController': REPORTING_CONTROLLER,
        'reportingInstance': (instance or 'portico')[:_INSTANCE_LIMIT],
        'action': ACTIONS[event['reason']],
        'reason': event['reason'],
        'note': event['note'].encode('utf-8')[:_NOTE_LIMIT].decode('utf-8', 'ignore'),
        'type': event['type'],
        'regarding': regarding,
    }


def _message(answer):
    """The message of an API answer, control characters out and cut at 300 characters (api_text)."""
    return api_text(answer.get('message') or answer.get('reason')) or 'no message'


def diffs(entries):
    """Ansible diffs of the statuses that change, with the Event each would post as a comment."""
    found = []
    for entry in entries:
        if not entry.get('write') and not entry.get('event'):
            continue
        event = entry.get('event')
        note = '# Event %s (%s): %s\n' % (event['reason'], event['type'], event['note']) if event else ''
        found.append({
            'before_header': '%s status.loadBalancer.ingress' % entry['service'],
            'after_header': '%s status.loadBalancer.ingress' % entry['service'],
            'before': json.dumps(entry.get('current') or [], indent=2, sort_keys=True) + '\n',
            'after': note + json.dumps(entry['ingress'] if entry.get('write') else entry.get('current') or [],
                                       indent=2, sort_keys=True) + '\n'})
    return found


def unconfirmed(hosts, confirmed):
    """The load balancers that did not confirm this run's configuration, sorted."""
    return sorted(set(hosts or []) - set(confirmed or []))


class StatusWriter:
    """Sends the status patches and Events of a model's load_balancers, and keeps what happened."""

    def __init__(self, client, instance, check_mode=False, now=None):
        self.client, self.instance, self.check_mode = client, instance, check_mode
        self.now = time.time() if now is None else now
        self.written, self.events, self.failed, self.warnings = [], [], [], []
        self.status_forbidden = self.events_forbidden = False

    def _patch(self, entry):
        """True when the status now is what the model says (written, or nothing to write)."""
        if not entry['write']:
            return True
        if self.status_forbidden:
            return False
        if self.check_mode:
            self.written.append({'service': entry['service'], 'ingress': entry['ingress']})
            return True
        code, answer = self.client.write(
            'PATCH', '/api/v1/namespaces/{namespace}/services/{name}/status',
            {'namespace': entry['namespace'], 'name': entry['name']}, status_patch(entry),
            'application/merge-patch+json', [('fieldManager', FIELD_MANAGER)])
        if 200 <= code <= 299:
            self.written.append({'service': entry['service'], 'ingress': entry['ingress']})
            return True
        if code == 403:
            self.status_forbidden = True
            self.warnings.append('cannot write the status of LoadBalancer services (403 Forbidden: %s). The sync '
                                 'still serves them; to have their addresses written, grant "patch" on '
                                 '"services/status"' % _message(answer))
        elif code == 409:
            self.failed.append({'service': entry['service'], 'reason': 'the service changed since it was read '
                                '(409 Conflict); its status is written by the next run'})
        elif code == 404:
            self.failed.append({'service': entry['service'], 'reason': 'the service was deleted since it was read'})
        else:
            self.failed.append({'service': entry['service'], 'reason': 'writing its status: the API server answered '
                                '%s: %s' % (code, _message(answer))})
        return False

    def _post(self, entry):
        if not entry.get('event') or self.events_forbidden:
            return
        body = event_object(entry, self.instance, self.now)
        told = {'service': entry['service'], 'reason': body['reason'], 'note': body['note'], 'type': body['type']}
        if self.check_mode:
            self.events.append(told)
            return
        code, answer = self.client.write('POST', '/apis/events.k8s.io/v1/namespaces/{namespace}/events',
                                         {'namespace': entry['namespace']}, body, query=[('fieldManager', FIELD_MANAGER)])
        if 200 <= code <= 299:
            self.events.append(told)
        elif code == 409:
            pass  # an Event of that name exists: this news was told already
        elif code == 403:
            self.events_forbidden = True
            self.warnings.append('cannot post Events about LoadBalancer addresses (403 Forbidden: %s); grant '
                                 '"create" on "events" in API group "events.k8s.io"' % _message(answer))
        else:
            self.warnings.append('posting an Event on %s: the API server answered %s: %s'
                                 % (entry['service'], code, _message(answer)))

    def run(self, entries):
        for entry in entries:
            if self._patch(entry):
                self._post(entry)
        return self

    @property
    def changed(self):
        return bool(self.written or self.events)
