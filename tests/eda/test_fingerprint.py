"""Fingerprints: only what the routing model reads changes them."""

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _cluster, _fingerprint as fp
from tests.fakeapi import objects


def node():
    return objects.node('worker-1', internal_ips='10.0.0.1')


def service():
    return objects.service('web', 'shop', type='NodePort', ports=[objects.service_port(80, name='http',
                                                                                       node_port=30080)])


def ready(obj, status):
    for condition in obj['status']['conditions']:
        if condition['type'] == 'Ready':
            condition['status'] = status
    return obj


@settings(max_examples=60, deadline=None)
@given(heartbeat=st.datetimes().map(lambda d: d.strftime('%Y-%m-%dT%H:%M:%SZ')),
       rv=st.integers(1, 10 ** 9), image=st.text(min_size=1, max_size=20), size=st.integers(0, 10 ** 10),
       annotation=st.text(max_size=10))
def test_node_noise_keeps_the_fingerprint(heartbeat, rv, image, size, annotation):
    before = node()
    after = copy.deepcopy(before)
    for condition in after['status']['conditions']:
        condition['lastHeartbeatTime'] = heartbeat
    after['status']['images'].append({'names': [image], 'sizeBytes': size})
    after['status']['allocatable']['memory'] = '%dKi' % size
    after['metadata']['resourceVersion'] = str(rv)
    after['metadata']['annotations']['node.alpha.kubernetes.io/ttl'] = annotation
    after['metadata'].pop('managedFields', None)
    assert fp.node_fingerprint(after) == fp.node_fingerprint(before)


def test_node_routing_changes_change_the_fingerprint():
    base = fp.node_fingerprint(node())
    changed = []
    obj = node()
    obj['status']['addresses'][0]['address'] = '10.0.0.2'
    changed.append(obj)
    changed.append(ready(node(), 'False'))
    changed.append(ready(node(), 'Unknown'))
    obj = node()
    obj['spec']['unschedulable'] = True
    changed.append(obj)
    obj = node()
    obj['metadata']['labels']['node.kubernetes.io/exclude-from-external-load-balancers'] = ''
    changed.append(obj)
    obj = node()
    obj['spec']['taints'] = [{'key': 'ToBeDeletedByClusterAutoscaler', 'effect': 'NoSchedule'}]
    changed.append(obj)
    obj = node()
    obj['metadata']['deletionTimestamp'] = '2026-11-27T00:00:00Z'
    changed.append(obj)
    prints = [fp.node_fingerprint(o) for o in changed]
    assert base not in prints and len(set(prints)) == len(prints)


@settings(max_examples=60, deadline=None)
@given(port=st.integers(1, 65535), node_port=st.integers(30000, 32767),
       protocol=st.sampled_from(['TCP', 'UDP', 'SCTP']), name=st.sampled_from(['http', 'web', '']))
def test_service_port_fields_change_the_fingerprint_exactly_when_they_change(port, node_port, protocol, name):
    before = service()
    after = copy.deepcopy(before)
    entry = after['spec']['ports'][0]
    entry.update(port=port, nodePort=node_port, protocol=protocol, name=name)
    same = (port, node_port, protocol, name) == (80, 30080, 'TCP', 'http')
    assert (fp.service_fingerprint(after) == fp.service_fingerprint(before)) == same


def test_service_noise_and_non_exposed_services():
    before = service()
    after = copy.deepcopy(before)
    after['metadata']['resourceVersion'] = '999'
    after['metadata']['annotations'] = {'note': 'x'}
    after['spec']['selector'] = {'app': 'other'}
    after['status'] = {'loadBalancer': {'ingress': [{'ip': '192.0.2.1'}]}}
    assert fp.service_fingerprint(after) == fp.service_fingerprint(before)
    assert fp.service_fingerprint(objects.service('cache', 'shop', ports=[6379])) is None
    local = copy.deepcopy(before)
    local['spec']['externalTrafficPolicy'] = 'Local'
    assert fp.service_fingerprint(local) != fp.service_fingerprint(before)
    selective = _cluster.ServiceFilter(['other'])
    assert fp.service_fingerprint(before, selective) is None


def test_slim_endpointslice_keeps_the_nodes_of_ready_endpoints():
    eps = objects.endpointslice('grafana', 'mon', ports=[3000], endpoints=[
        objects.endpoint('10.244.1.5', node_name='worker-2'),
        objects.endpoint('10.244.1.6', node_name='worker-1'),
        objects.endpoint('10.244.1.7', node_name='worker-3', ready=False),
        objects.endpoint('10.244.1.8')])
    eps['endpoints'][1]['conditions'].pop('ready')  # unset counts as ready
    assert fp.slim_endpointslice(eps) == {'namespace': 'mon', 'service': 'grafana',
                                          'ready_nodes': ['worker-1', 'worker-2']}
    moved = copy.deepcopy(eps)
    moved['endpoints'][0]['addresses'] = ['10.244.9.9']
    assert fp.endpointslice_fingerprint(moved) == fp.endpointslice_fingerprint(eps)


def test_routing_state_events_and_relists():
    state = fp.RoutingState()
    svc = objects.service('grafana', 'mon', type='LoadBalancer', ports=[3000], external_traffic_policy='Local')
    eps = objects.endpointslice('grafana', 'mon', ports=[3000], endpoints=[
        objects.endpoint('10.244.1.5', node_name='worker-1')])
    assert state.replace('Node', [node()]) == 1
    assert state.replace('Service', [svc, objects.service('cache', 'shop', ports=[6379])]) == 1
    assert state.replace('EndpointSlice', [eps]) == 1
    assert not state.apply('Node', 'MODIFIED', ready(node(), 'True'))
    assert state.apply('Node', 'MODIFIED', ready(node(), 'False'))
    second = objects.endpointslice('grafana', 'mon', name='grafana-2', ports=[3000], endpoints=[
        objects.endpoint('10.244.2.5', node_name='worker-1')])
    assert not state.apply('EndpointSlice', 'ADDED', second)  # same node set
    assert not state.apply('EndpointSlice', 'DELETED', eps)
    assert state.apply('EndpointSlice', 'DELETED', second)
    assert state.ready_nodes('mon/grafana') == frozenset()
    before = state.fingerprint()
    assert state.replace('Service', [svc]) == 0 and state.fingerprint() == before
    assert state.apply('Service', 'DELETED', svc)
    assert not state.apply('EndpointSlice', 'ADDED', eps)  # its service is gone


def _status_written_by(obj, manager, ip):
    """obj as the API server leaves it after manager patched status.loadBalancer.ingress (fixture shape)."""
    obj = copy.deepcopy(obj)
    obj['status'] = {'loadBalancer': {'ingress': [{'ip': ip, 'ipMode': 'Proxy',
                                                   'ports': [{'port': 443, 'protocol': 'TCP'}]}]}}
    entry = {'manager': manager, 'operation': 'Update', 'apiVersion': 'v1', 'time': '2026-12-01T21:13:42Z',
             'fieldsType': 'FieldsV1', 'fieldsV1': {'f:status': {'f:loadBalancer': {'f:ingress': {}}}},
             'subresource': 'status'}
    obj['metadata']['managedFields'] = [f for f in obj['metadata'].get('managedFields', [])
                                        if f.get('subresource') != 'status'] + [entry]
    obj['metadata']['resourceVersion'] = str(int(obj['metadata'].get('resourceVersion') or '1') + 1)
    return obj


def _load_balancer():
    return objects.service('api', 'shop', type='LoadBalancer', load_balancer_class='portico.io/haproxy',
                           ports=[objects.service_port(443, name='https', node_port=30443)])


def test_portico_writing_a_status_does_not_trigger_a_sync():
    before = _load_balancer()
    after = _status_written_by(before, 'portico', '192.0.2.10')
    assert fp.service_fingerprint(after) == fp.service_fingerprint(before)
    state = fp.RoutingState()
    state.apply(fp.SERVICE, 'ADDED', before)
    assert state.apply(fp.SERVICE, 'MODIFIED', after) is False
    assert state.apply(fp.SERVICE, 'MODIFIED', _status_written_by(after, 'kubectl-edit', '192.0.2.99')) is True


def test_someone_else_changing_the_status_class_or_address_does_trigger_one():
    before = _status_written_by(_load_balancer(), 'portico', '192.0.2.10')
    theirs = _status_written_by(before, 'kubectl-edit', '192.0.2.99')
    assert fp.service_fingerprint(theirs) != fp.service_fingerprint(before)
    for change in ({'loadBalancerIP': '192.0.2.11'}, {'loadBalancerClass': 'example.com/other'}):
        changed = copy.deepcopy(before)
        changed['spec'].update(change)
        assert fp.service_fingerprint(changed) != fp.service_fingerprint(before)
    annotated = copy.deepcopy(before)
    annotated['metadata'].setdefault('annotations', {})['portico.io/address'] = '192.0.2.12'
    assert fp.service_fingerprint(annotated) != fp.service_fingerprint(before)


def test_the_status_owner_is_read_from_managed_fields_as_a_real_server_writes_them():
    import json
    import os
    path = os.path.join(os.path.dirname(__file__), '..', 'data', 'kube-apiserver-1.36', 'service-status-patch.json')
    with open(path) as handle:
        real = json.load(handle)
    assert _cluster.status_manager(real['metadata']) == 'curl'
    assert _cluster.slim_service(real)['ingress'] == [{'ip': '192.0.2.10', 'ipMode': 'Proxy',
                                                       'ports': [{'port': 443, 'protocol': 'TCP'}]}]
