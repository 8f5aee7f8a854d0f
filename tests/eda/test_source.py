"""The event source against the test API server: only routing changes make events, bursts coalesce,
and a restart, a dropped watch or a 410 never lose a change."""

import json
import time

import pytest

from tests.eda.conftest import source_args
from tests.fakeapi import objects


def cluster(api, nodes=3, services=2):
    api.load_list(objects.cluster_list(
        [objects.node('worker-%d' % i, internal_ips='10.0.0.%d' % i) for i in range(1, nodes + 1)]
        + [objects.service('web-%d' % i, 'shop', type='NodePort', ports=[objects.service_port(80 + i, name='http')])
           for i in range(services)]
        + [objects.service('cache', 'shop', ports=[6379])]))


def heartbeat(api, name, second):
    node = api.get('nodes', name)
    for condition in node['status']['conditions']:
        condition['lastHeartbeatTime'] = '2026-11-27T00:%02d:%02dZ' % (second // 60 % 60, second % 60)
    node['status']['images'].append({'names': ['registry.example/app:%d' % second], 'sizeBytes': second})
    node['metadata'].pop('resourceVersion')
    api.update(node)


def set_node_port(api, name, node_port):
    svc = api.get('services', name, 'shop')
    svc['spec']['ports'][0]['nodePort'] = node_port
    svc['metadata'].pop('resourceVersion')
    return api.update(svc)


def test_node_heartbeats_and_other_noise_make_no_event(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi)
    for i in range(100):
        heartbeat(watchapi, 'worker-%d' % (i % 3 + 1), i)
    cache = watchapi.get('services', 'cache', 'shop')
    cache['spec']['ports'][0]['port'] = 6380
    cache['metadata'].pop('resourceVersion')
    watchapi.update(cache)  # a ClusterIP service is not routed
    # every watch has caught up (bookmarks carry the latest revision)
    assert source.run_until(lambda: all(w.resource_version == str(watchapi.resource_version)
                                        for w in source.source.watchers))
    source.run_for(1.0)
    assert source.events() == []


def test_a_burst_of_50_service_changes_makes_at_most_2_events(watchapi, run_source):
    cluster(watchapi, services=5)
    source = run_source(watchapi, quiet_period=1.0, max_delay=5)
    began = time.monotonic()
    for i in range(50):
        set_node_port(watchapi, 'web-%d' % (i % 5), 30100 + i)
    assert source.run_until(lambda: not source.queue.empty(), timeout=8)
    source.run_for(1.5)
    events = source.events()
    assert 1 <= len(events) <= 2, events
    assert all(e['reason'] == 'change' and e['kinds'] == ['Service'] for e in events)
    assert sum(e['changes'] for e in events) == 50
    print('50 changes -> %d event(s), first after %.2fs' % (len(events), time.monotonic() - began))


def test_an_event_comes_no_later_than_max_delay_in_a_steady_stream(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi, quiet_period=0.5, max_delay=1.5)
    began = time.monotonic()
    i = 0
    while source.queue.empty() and time.monotonic() - began < 5:
        set_node_port(watchapi, 'web-0', 30200 + i % 50)
        i += 1
        source.run_for(0.1)  # a change every 100 ms: never quiet for 0.5 s
    elapsed = time.monotonic() - began
    assert not source.queue.empty()
    assert elapsed < 2.5, elapsed


@pytest.mark.parametrize('change', ['address', 'not_ready', 'node_port', 'new_service', 'delete_service',
                                    'type_to_clusterip', 'new_node', 'delete_node'])
def test_each_routing_change_makes_one_event(watchapi, run_source, change):
    cluster(watchapi)
    source = run_source(watchapi)
    if change in ('address', 'not_ready'):
        node = watchapi.get('nodes', 'worker-2')
        if change == 'address':
            node['status']['addresses'][0]['address'] = '10.0.9.9'
        else:
            for condition in node['status']['conditions']:
                if condition['type'] == 'Ready':
                    condition['status'] = 'False'
        node['metadata'].pop('resourceVersion')
        watchapi.update(node)
        kind = 'Node'
    elif change == 'node_port':
        set_node_port(watchapi, 'web-1', 31999)
        kind = 'Service'
    elif change == 'new_service':
        watchapi.add_service(objects.service('new', 'shop', type='LoadBalancer', ports=[8080]))
        kind = 'Service'
    elif change == 'delete_service':
        watchapi.delete_service('shop', 'web-0')
        kind = 'Service'
    elif change == 'type_to_clusterip':
        svc = watchapi.get('services', 'web-0', 'shop')
        svc['spec']['type'] = 'ClusterIP'
        del svc['spec']['ports'][0]['nodePort']
        svc['metadata'].pop('resourceVersion')
        watchapi.update(svc)
        kind = 'Service'
    elif change == 'new_node':
        watchapi.add_node(objects.node('worker-9', internal_ips='10.0.0.9'))
        kind = 'Node'
    else:
        watchapi.delete_node('worker-3')
        kind = 'Node'
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    source.run_for(0.5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': [kind]}]


def test_endpointslices_count_only_for_local_services_and_only_their_ready_nodes(watchapi, run_source):
    cluster(watchapi)
    local = watchapi.add_service(objects.service('grafana', 'mon', type='LoadBalancer', ports=[3000],
                                                 external_traffic_policy='Local'))
    watchapi.add_endpointslice(objects.endpointslice('grafana', 'mon', ports=[3000], endpoints=[
        objects.endpoint('10.244.1.5', node_name='worker-1')], service_uid=local['metadata']['uid']))
    watchapi.add_endpointslice(objects.endpointslice('web-0', 'shop', ports=[80], endpoints=[
        objects.endpoint('10.244.1.6', node_name='worker-1')]))
    source = run_source(watchapi)

    def edit(namespace, service, endpoints):
        name = watchapi.list('endpointslices', namespace)[0]['metadata']['name']
        eps = watchapi.get('endpointslices', name, namespace)
        eps['endpoints'] = endpoints
        eps['metadata'].pop('resourceVersion')
        watchapi.update(eps)

    # a Cluster-policy service's slice, and a pod IP change on the same node: nothing
    edit('shop', 'web-0', [objects.endpoint('10.244.2.6', node_name='worker-2')])
    edit('mon', 'grafana', [objects.endpoint('10.244.1.7', node_name='worker-1')])
    edit('mon', 'grafana', [objects.endpoint('10.244.1.7', node_name='worker-1'),
                            objects.endpoint('10.244.1.8', node_name='worker-1', ready=False)])
    source.run_for(1.0)
    assert source.events() == []
    # the Local service gains a ready endpoint on another node
    edit('mon', 'grafana', [objects.endpoint('10.244.1.7', node_name='worker-1'),
                            objects.endpoint('10.244.2.8', node_name='worker-2')])
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['EndpointSlice']}]


def test_an_api_restart_is_survived_and_a_change_made_while_down_is_seen(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi, reconnect_max_delay=0.5)
    watchapi.stop()
    source.run_for(1.0)  # every watcher fails to reconnect for a while
    assert all(w.failures for w in source.source.watchers)
    set_node_port(watchapi, 'web-0', 31000)
    watchapi.start()
    assert source.run_until(lambda: not source.queue.empty(), timeout=8)
    source.run_for(0.5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}]
    assert not source.task.done()
    # and the watches work again
    watchapi.delete_node('worker-1')
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    assert source.events()[0]['kinds'] == ['Node']


def test_a_dropped_watch_resumes_from_its_resource_version(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi)
    lists = sum(w.lists for w in source.source.watchers)
    assert watchapi.drop_watches() == 3
    set_node_port(watchapi, 'web-1', 31001)
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}]
    assert sum(w.lists for w in source.source.watchers) == lists  # resumed, no relist


def test_410_on_an_open_watch_relists_and_finds_the_change(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi)
    services = next(w for w in source.source.watchers if w.kind == 'Service')
    with watchapi.store.lock:  # the watch cannot send the change before history is compacted
        set_node_port(watchapi, 'web-0', 31002)
        watchapi.compact()
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    source.run_for(0.5)
    assert services.expired >= 1 and services.lists == 2
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}]


def test_410_on_resume_and_a_change_during_the_relist_are_both_seen(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi)
    services = next(w for w in source.source.watchers if w.kind == 'Service')
    # the next watch request of services is held back 0.6 s: first it resumes from an old revision
    watchapi.fault('/api/v1/services', delay=0.6, times=1, when=lambda r: 'watch' in r.query)
    watchapi.drop_watches()
    set_node_port(watchapi, 'web-0', 31003)
    watchapi.compact()
    assert source.run_until(lambda: services.expired >= 1, timeout=5)
    # then, after the relist, a watch that starts late must still deliver a change made meanwhile
    watchapi.fault('/api/v1/services', delay=0.6, times=1, when=lambda r: 'watch' in r.query)
    watchapi.drop_watches()
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    source.run_for(0.4)
    first = source.events()
    assert first == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}], first
    watchapi.add_service(objects.service('late', 'shop', type='NodePort', ports=[8081]))
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}]


def test_startup_and_periodic_events(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi, sync_on_start=True, resync_interval=0.8)
    assert source.run_until(lambda: source.queue.qsize() >= 2, timeout=5)
    events = source.events()
    assert events[0] == {'reason': 'startup', 'changes': 0, 'kinds': []}
    assert events[1] == {'reason': 'periodic', 'changes': 0, 'kinds': []}


def test_namespaces_and_label_selector_limit_the_services_watched(watchapi, run_source):
    cluster(watchapi)
    watchapi.add_service(objects.service('edge', 'shop', type='NodePort', ports=[8443], labels={'exposure': 'edge'}))
    source = run_source(watchapi, namespaces='shop,other', label_selector='exposure=edge')
    assert len(source.source.watchers) == 5  # nodes, services and slices in each namespace
    set_node_port(watchapi, 'web-0', 31004)  # no label: ignored
    watchapi.add_service(objects.service('edge', 'other-ns', type='NodePort', ports=[8444],
                                         labels={'exposure': 'edge'}))
    source.run_for(1.0)
    assert source.events() == []
    svc = watchapi.get('services', 'edge', 'shop')
    svc['metadata']['labels'] = {}
    svc['metadata'].pop('resourceVersion')
    watchapi.update(svc)  # leaves the selection: a DELETED for the source
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}]
    requests = [r for r in watchapi.requests if r.path.endswith('/services') and 'watch' in r.query]
    assert {r.path for r in requests} == {'/api/v1/namespaces/shop/services', '/api/v1/namespaces/other/services'}
    assert all(r.query['labelSelector'] == ['exposure=edge'] for r in requests)


def test_connection_comes_from_k8s_auth_variables_and_bad_options_fail_at_once(watchapi, source_module):
    environ = {'K8S_AUTH_HOST': watchapi.url, 'K8S_AUTH_API_KEY': watchapi.token,
               'K8S_AUTH_SSL_CA_CERT': str(watchapi.ca_path), 'K8S_AUTH_VERIFY_SSL': 'yes'}
    settings, options = source_module.parse_args({'quiet_period': '0.5'}, environ)
    assert settings['host'] == watchapi.url and settings['validate_certs'] is True
    assert options['quiet_period'] == 0.5 and options['max_delay'] == 5.0
    with pytest.raises(ValueError, match='quiet_period'):
        source_module.parse_args({'quiet_period': 'soon'}, environ)
    with pytest.raises(Exception, match='label_selector'):
        source_module.NodePortChanges(dict(source_args(watchapi), label_selector='a in (b'), environ={})
    # the other name kubernetes.core users set, the proxy settings, and a kubeconfig given as its content
    settings, options = source_module.parse_args(
        {'kubeconfig': {'apiVersion': 'v1', 'kind': 'Config'}, 'proxy_headers': {'user_agent': 'portico'}},
        {'K8S_AUTH_VALIDATE_CERTS': 'false', 'K8S_AUTH_NO_PROXY': '.svc'})
    assert settings['validate_certs'] is False and settings['no_proxy'] == '.svc'
    assert settings['kubeconfig'] == {'apiVersion': 'v1', 'kind': 'Config'}
    assert settings['proxy_headers'] == {'user_agent': 'portico'}


def test_a_wrong_token_is_retried_not_fatal(watchapi, run_source):
    cluster(watchapi)
    source = run_source(watchapi, wait=False, api_key='wrong', reconnect_max_delay=0.3)
    source.run_for(1.0)
    assert not source.task.done()
    assert all(w.failures >= 2 and not w.lists for w in source.source.watchers)


def _patch_status(api, name, manager, address):
    """A status write over HTTP, as a load balancer controller (or kubectl) sends it."""
    from ansible_collections.portico.k8s.plugins.module_utils._client import KubeClient
    client = KubeClient({'host': api.url, 'api_key': api.token, 'ca_cert': str(api.ca_path)})
    try:
        body = {'status': {'loadBalancer': {'ingress': [{'ip': address, 'ipMode': 'Proxy',
                                                         'ports': [{'port': 443, 'protocol': 'TCP'}]}]}}}
        code, answer = client.write('PATCH', '/api/v1/namespaces/{namespace}/services/{name}/status',
                                    {'namespace': 'shop', 'name': name}, body, 'application/merge-patch+json',
                                    [('fieldManager', manager)])
        assert code == 200, answer
    finally:
        client.close()


def test_portico_writing_a_status_makes_no_event_but_another_writer_does(watchapi, run_source):
    cluster(watchapi)
    watchapi.add_service(objects.service('edge', 'shop', type='LoadBalancer', load_balancer_class='portico.io/haproxy',
                                         ports=[objects.service_port(443, name='https')]))
    source = run_source(watchapi)
    _patch_status(watchapi, 'edge', 'portico', '192.0.2.10')
    assert source.run_until(lambda: all(w.resource_version == str(watchapi.resource_version)
                                        for w in source.source.watchers))
    source.run_for(1.0)
    assert source.events() == []
    _patch_status(watchapi, 'edge', 'kubectl-edit', '192.0.2.99')
    assert source.run_until(lambda: not source.queue.empty(), timeout=5)
    source.run_for(0.5)
    assert source.events() == [{'reason': 'change', 'changes': 1, 'kinds': ['Service']}]


def test_a_watch_error_event_is_told_without_control_characters_and_cut(source_module):
    watcher = source_module._Watcher('Service', 'services', None, None, {}, {}, lambda message: None)
    line = json.dumps({'type': 'ERROR', 'object': {
        'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'code': 500, 'reason': 'InternalError',
        'message': '\x1b[31mwatch\x1b[0m broken:\r\n' + 'w' * 5000}}).encode()
    with pytest.raises(source_module._WatchError) as caught:
        watcher._line(line)
    message = str(caught.value)
    assert message.startswith('watching services: watch broken: www')
    assert message.endswith('... [4714 more characters cut] (500)') and message.isprintable()
