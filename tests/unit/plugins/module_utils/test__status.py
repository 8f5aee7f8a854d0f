"""The status writer against the test API server: patches, conflicts, permissions, Events told once."""

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _addresses, _cluster, _status
from ansible_collections.portico.k8s.plugins.module_utils._client import KubeClient
from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI

READER = 'reader-token'


@pytest.fixture
def api(tmp_path):
    with FakeKubeAPI(tmp_path / 'certs') as api:
        api.load_list(objects.cluster_list([
            objects.service(name, 'shop', type='LoadBalancer', load_balancer_class=_addresses.DEFAULT_CLASS,
                            ports=[objects.service_port(443, name='https')]) for name in ('web', 'api')]))
        api.add_token(READER, 'viewer', forbidden=[('patch', 'services/status'), ('create', 'events')])
        yield api


def client(api, token=None):
    return KubeClient({'host': api.url, 'api_key': token or api.token, 'ca_cert': str(api.ca_path)})


def entry(api, name, address='192.0.2.10', **changes):
    service = _cluster.slim_service(api.get('services', name, 'shop'))
    service.update(changes)
    return _addresses.status_entry(service, address, 'public', [443])


def test_a_status_is_merge_patched_by_portico_and_the_event_is_posted_once(api):
    entries = [entry(api, 'web')]
    writer = _status.StatusWriter(client(api), 'ctl-1').run(entries)
    assert writer.changed and writer.failed == [] and writer.warnings == []
    stored = api.get('services', 'web', 'shop')
    assert stored['status']['loadBalancer'] == {'ingress': [
        {'ip': '192.0.2.10', 'ipMode': 'Proxy', 'ports': [{'port': 443, 'protocol': 'TCP'}]}]}
    assert _cluster.status_manager(stored['metadata']) == 'portico'
    [event] = api.events('shop', regarding='web')
    assert (event['reason'], event['type'], event['note'], event['reportingController'], event['reportingInstance'],
            event['action'], event['regarding']['uid']) == (
        'AddressAssigned', 'Normal', 'assigned 192.0.2.10 from pool public', 'portico.io/haproxy-sync', 'ctl-1',
        'AssignAddress', stored['metadata']['uid'])
    # the same news again: the status is right, the Event's name is taken; nothing is written
    again = _status.StatusWriter(client(api), 'ctl-2').run([dict(entries[0], write=False)])
    assert not again.changed and len(api.events('shop', regarding='web')) == 1


def test_a_service_that_changed_since_it_was_read_is_left_for_the_next_run(api):
    stale = entry(api, 'web')
    service = api.get('services', 'web', 'shop')
    service['metadata'].setdefault('labels', {})['touched'] = 'yes'
    api.update(service)
    writer = _status.StatusWriter(client(api), 'ctl').run([stale, entry(api, 'api', '192.0.2.11')])
    assert writer.failed == [{'service': 'shop/web', 'reason': 'the service changed since it was read (409 Conflict); '
                                                               'its status is written by the next run'}]
    assert api.get('services', 'web', 'shop')['status']['loadBalancer'] == {}
    assert api.get('services', 'api', 'shop')['status']['loadBalancer']['ingress'][0]['ip'] == '192.0.2.11'
    # no Event for what was not written
    assert api.events('shop', regarding='web') == []


def test_a_deleted_service_is_reported_and_the_others_are_written(api):
    gone = entry(api, 'web')
    api.delete('services', 'web', 'shop')
    writer = _status.StatusWriter(client(api), 'ctl').run([gone, entry(api, 'api')])
    assert writer.failed == [{'service': 'shop/web', 'reason': 'the service was deleted since it was read'}]
    assert [w['service'] for w in writer.written] == ['shop/api']


def test_without_permission_it_says_so_once_and_writes_nothing(api):
    writer = _status.StatusWriter(client(api, READER), 'ctl').run([entry(api, 'web'), entry(api, 'api', '192.0.2.11')])
    assert not writer.changed and writer.failed == []
    assert len(writer.warnings) == 1
    assert writer.warnings[0].startswith('cannot write the status of LoadBalancer services (403 Forbidden: services '
                                         '"web" is forbidden: User "viewer" cannot patch resource "services/status"')
    patches = [r for r in api.requests if r.method == 'PATCH']
    assert len(patches) == 1


def test_events_refused_alone_still_write_the_status(api):
    api.add_token('status-only', 'writer', forbidden=[('create', 'events')])
    writer = _status.StatusWriter(client(api, 'status-only'), 'ctl').run([entry(api, 'web'), entry(api, 'api', '192.0.2.11')])
    assert [w['service'] for w in writer.written] == ['shop/web', 'shop/api']
    assert len(writer.warnings) == 1 and 'grant "create" on "events"' in writer.warnings[0]
    assert len([r for r in api.requests if r.method == 'POST']) == 1


def test_api_error_texts_in_the_writers_reasons_and_warnings_are_clean_and_cut(api):
    message = '\x1b[33mwebhook\x1b[0m denied:\n' + 'z' * 5000
    api.fault('/api/v1/namespaces/shop/services/web/status', status=500, body={
        'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'code': 500, 'message': message})
    api.fault('/apis/events.k8s.io/v1/namespaces/shop/events', status=500, body={
        'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'code': 500, 'message': message})
    writer = _status.StatusWriter(client(api), 'ctl').run([entry(api, 'web'), entry(api, 'api', '192.0.2.11')])
    [failed] = writer.failed
    assert failed['reason'].startswith('writing its status: the API server answered 500: webhook denied: zzz')
    assert failed['reason'].endswith('... [4716 more characters cut]') and '\x1b' not in failed['reason']
    [warning] = writer.warnings
    assert warning.startswith('posting an Event on shop/api: the API server answered 500: webhook denied: zzz')
    assert len(warning) < 420 and warning.isprintable()


def test_check_mode_sends_nothing(api):
    api.clear_requests()
    writer = _status.StatusWriter(client(api), 'ctl', check_mode=True).run([entry(api, 'web')])
    assert writer.written and writer.events
    assert [r.method for r in api.requests] == []


def test_a_released_status_is_removed_with_a_null_ingress(api):
    _status.StatusWriter(client(api), 'ctl').run([entry(api, 'web')])
    service = _cluster.slim_service(api.get('services', 'web', 'shop'))
    release = _addresses.status_entry(service)
    assert release['write'] and release['ingress'] == []
    assert _status.status_patch(release)['status'] == {'loadBalancer': {'ingress': None}}
    _status.StatusWriter(client(api), 'ctl').run([release])
    assert api.get('services', 'web', 'shop')['status'] == {'loadBalancer': {}}
    assert [e['reason'] for e in api.events('shop', regarding='web')] == ['AddressAssigned', 'AddressReleased']


def test_an_event_is_valid_for_the_api_server_whatever_its_note(api):
    news = {'service': 'shop/web', 'namespace': 'shop', 'name': 'w' * 63, 'uid': 'u', 'address': None,
            'event': {'reason': 'AddressRefused', 'type': 'Warning', 'note': 'é\n' * 3000, 'key': 'k'}}
    body = _status.event_object(news, 'i' * 300, 1795752206.5)
    assert len(body['note'].encode('utf-8')) <= 1024 and len(body['reportingInstance']) == 128
    assert body['eventTime'] == '2026-11-27T04:03:26.500000Z'
    code, answer = client(api).write('POST', '/apis/events.k8s.io/v1/namespaces/{namespace}/events',
                                     {'namespace': 'shop'}, body)
    assert code == 201, answer
