"""The API client against the test API server: paging, auth, TLS and every way a read can fail."""

import json
import os

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _client, _cluster, _collect
from tests.fakeapi import objects

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'data', 'kube-apiserver-1.36')


def settings(api, **overrides):
    values = {'host': api.url, 'api_key': api.token, 'ca_cert': str(api.ca_path)}
    values.update(overrides)
    return dict((name, values.get(name)) for name in _client.CONNECTION_OPTIONS)


def names(items):
    return [item['name'] for item in items]


@pytest.fixture
def cluster(fakeapi):
    fakeapi.load_list(objects.cluster_list(
        [objects.node('node-%d' % i, internal_ips='10.0.0.%d' % i) for i in range(1, 8)]
        + [objects.service('web-%d' % i, 'shop', type='NodePort', ports=[80]) for i in range(5)]))
    return fakeapi


def test_lists_every_page_with_limit_and_continue(cluster):
    client = _client.KubeClient(settings(cluster), page_size=2)
    nodes, version = client.list('nodes', _cluster.slim_node)
    assert names(nodes) == ['node-%d' % i for i in range(1, 8)]
    assert version == str(cluster.resource_version)
    pages = [r for r in cluster.requests if r.path == '/api/v1/nodes']
    assert len(pages) == 4
    assert all(r.query.get('limit') == ['2'] or r.query.get('limit') == '2' for r in pages)


def test_kubeconfig_and_context_work_like_kubernetes_core(cluster, tmp_path):
    kubeconfig = cluster.write_kubeconfig(tmp_path / 'config', context='edge')
    client = _client.KubeClient(dict(settings(cluster, host=None, api_key=None, ca_cert=None),
                                     kubeconfig=str(kubeconfig), context='edge'))
    assert len(client.list('nodes', _cluster.slim_node)[0]) == 7


@pytest.mark.filterwarnings('ignore::urllib3.exceptions.InsecureRequestWarning')
def test_tls_is_verified_by_default(cluster):
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster, ca_cert=None)).list('nodes', _cluster.slim_node)
    assert 'TLS' in str(caught.value) or 'certificate' in str(caught.value)
    insecure = _client.KubeClient(settings(cluster, ca_cert=None, validate_certs=False))
    assert len(insecure.list('nodes', _cluster.slim_node)[0]) == 7


def test_a_bad_token_is_reported_as_rejected_credentials(cluster):
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster, api_key='wrong')).list('nodes', _cluster.slim_node)
    assert '401 Unauthorized' in str(caught.value)
    assert 'wrong' not in str(caught.value)


def test_a_missing_permission_is_named(cluster):
    cluster.forbid(cluster.token, 'services')
    client = _client.KubeClient(settings(cluster))
    with pytest.raises(_client.KubeError) as caught:
        client.list('services', _cluster.slim_service)
    message = str(caught.value)
    assert '403 Forbidden' in message and 'cannot list resource "services"' in message
    assert '"list" on services' in message


def test_a_missing_permission_on_nodes_asks_for_the_cluster_scope_only(cluster):
    # nodes are cluster-scoped: a namespaced Role cannot grant them
    cluster.forbid(cluster.token, 'nodes')
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster)).list('nodes', _cluster.slim_node)
    message = str(caught.value)
    assert '403 Forbidden' in message and 'cannot list resource "nodes"' in message
    assert message.endswith('The account needs "list" on nodes at the cluster scope (nodes are cluster-scoped: '
                            'a ClusterRole and a ClusterRoleBinding).')
    assert 'namespace.' not in message


@pytest.mark.parametrize('option', ['ca_cert', 'client_cert', 'client_key'])
def test_a_missing_certificate_file_is_named_before_connecting(cluster, tmp_path, option):
    missing = tmp_path / 'no-such' / 'file.pem'
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster, **{option: str(missing)}))
    message = str(caught.value)
    assert message.startswith('%s: the ' % option) and '%s does not exist' % missing in message
    assert 'option %s' % option in message
    assert cluster.requests == []
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster, **{option: str(tmp_path)}))
    assert '%s is not a file' % tmp_path in str(caught.value)


@pytest.mark.parametrize('host', [True, False])
def test_a_missing_kubeconfig_is_named(cluster, tmp_path, host):
    missing = tmp_path / 'kubeconfig'
    overrides = {} if host else {'host': None, 'api_key': None, 'ca_cert': None}
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(dict(settings(cluster, **overrides), kubeconfig=str(missing)))
    assert str(caught.value) == 'kubeconfig %s does not exist (option kubeconfig, or K8S_AUTH_KUBECONFIG)' % missing
    # several paths, as KUBECONFIG takes them: one that exists is enough
    real = cluster.write_kubeconfig(tmp_path / 'real')
    client = _client.KubeClient(dict(settings(cluster, **overrides), kubeconfig='%s:%s' % (missing, real)))
    assert len(client.list('nodes', _cluster.slim_node)[0]) == 7


def test_an_expired_continue_token_restarts_the_list_once(cluster):
    fault = cluster.fault('/api/v1/nodes', status=410, times=1, when=lambda r: 'continue' in r.query)
    nodes, version = _client.KubeClient(settings(cluster), page_size=3).list('nodes', _cluster.slim_node)
    assert fault.hits == 1
    assert names(nodes) == ['node-%d' % i for i in range(1, 8)]


def test_a_list_that_expires_twice_fails(cluster):
    cluster.fault('/api/v1/nodes', status=410, when=lambda r: 'continue' in r.query)
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster), page_size=3).list('nodes', _cluster.slim_node)
    assert 'expired twice' in str(caught.value)


def test_a_list_that_ends_early_is_refused(cluster):
    # A proxy that drops the continue token: the first page promises more than arrives.
    items, metadata = cluster.list_page('nodes', None, {'limit': ['3']})
    metadata.pop('continue')
    page = {'kind': 'NodeList', 'apiVersion': 'v1', 'metadata': metadata, 'items': items}
    cluster.fault('/api/v1/nodes', status=200, body=page, times=1)
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster), page_size=3).list('nodes', _cluster.slim_node)
    assert 'ended after 3 of 7 items' in str(caught.value)


@pytest.mark.parametrize('fault,expected', [
    ({'status': 500, 'body': {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                              'message': 'etcdserver: request timed out', 'code': 500}},
     'answered 500'),
    ({'truncate': 40}, 'cut short'),
    ({'status': 200, 'body': b'{"kind": "NodeList", "items": [tru'}, 'not valid JSON'),
    ({'status': 200, 'body': {'kind': 'Status'}}, 'not a NodeList'),
    ({'drop': True}, 'closed the connection'),
])
def test_server_faults_end_with_a_message_naming_the_cause(cluster, fault, expected):
    cluster.fault('/api/v1/nodes', **fault)
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster)).list('nodes', _cluster.slim_node)
    assert expected in str(caught.value)


ANSI_BODY = {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'code': 500, 'reason': 'InternalError',
             'message': '\x1b[31mERROR\x1b[0m etcd:\r\n\x1b]0;owned\x07 leader \u202echanged\u202c ' + 'x' * 5000}


def test_api_error_texts_lose_control_characters_and_are_cut(cluster):
    # a proxy's or an apiserver wrapper's error: ANSI colours, a terminal title, line breaks, a bidi override, 5 KB
    cluster.fault('/api/v1/nodes', status=500, body=ANSI_BODY)
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster)).list('nodes', _cluster.slim_node)
    message = str(caught.value)
    assert message.startswith('listing nodes: the API server answered 500 Internal Server Error: ERROR etcd: leader '
                              'changed xxx')
    assert message.endswith('xxx... [4727 more characters cut]'), message[-80:]
    assert len(message) < 420 and message.isprintable() and '\x1b' not in message and 'owned' not in message


@pytest.mark.parametrize('value,expected', [
    ('\x1b[1;31mred\x1b[0m', 'red'),
    ('a\n\tb\x00c\x7fd', 'a b c d'),
    ('\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\', 'link'),
    (b'\xffbytes', '\ufffdbytes'),
    (None, ''),
    ('\u202eevil\u200b', 'evil'),
    ('y' * 300, 'y' * 300),
    ('y' * 301, 'y' * 300 + '... [1 more characters cut]'),
])
def test_api_text(value, expected):
    assert _client.api_text(value) == expected


def test_a_hanging_server_times_out(cluster):
    cluster.fault('/api/v1/nodes', delay=3, times=1)
    with pytest.raises(_client.KubeError) as caught:
        _client.KubeClient(settings(cluster), timeout=1).list('nodes', _cluster.slim_node)
    assert 'did not answer within 1 seconds' in str(caught.value)


def test_connection_refused_names_the_server(cluster):
    url = cluster.url
    cluster.stop()
    try:
        with pytest.raises(_client.KubeError) as caught:
            _client.KubeClient(settings(cluster, host=url)).list('nodes', _cluster.slim_node)
        assert 'cannot connect' in str(caught.value) and url in str(caught.value)
    finally:
        cluster.start()


def test_namespaces_and_label_selector_are_asked_of_the_server(fakeapi):
    fakeapi.load_list(objects.cluster_list([
        objects.node('node-1', internal_ips='10.0.0.1'),
        objects.service('a', 'shop', type='NodePort', ports=[81], labels={'edge': 'yes'}),
        objects.service('b', 'shop', type='NodePort', ports=[82]),
        objects.service('c', 'blog', type='LoadBalancer', ports=[83], labels={'edge': 'yes'}),
        objects.service('d', 'shop', type='ClusterIP', ports=[84], labels={'edge': 'yes'}),
    ]))
    options = dict(settings(fakeapi), namespaces=['shop'], label_selector='edge=yes', filter=None,
                   snapshot=None, address_types=['InternalIP'], frontend_port='service_port',
                   api_timeout=5, page_size=10, allow_no_nodes=False)
    model = _collect.collect_model(options.get)
    assert [b['service'] for b in model['backends']] == ['shop/a']
    paths = {r.path for r in fakeapi.requests}
    assert '/api/v1/namespaces/shop/services' in paths and '/api/v1/services' not in paths


def test_services_as_kubectl_creates_them_are_served(fakeapi):
    # through the API server's own validation: `kubectl create service nodeport x --tcp=8200:8080`
    # names its port "8200-8080", and a chart's "http-metrics-api" is as valid
    fakeapi.add_node(objects.node('node-1', internal_ips='10.0.0.1'))
    fakeapi.add_service(objects.service('x', 'shop', type='NodePort', ports=[
        objects.service_port(8200, name='8200-8080', target_port=8080)]))
    fakeapi.add_service(objects.service('metrics', 'shop', type='NodePort', ports=[
        objects.service_port(9100, name='http-metrics-api'), objects.service_port(9101, name='9101')]))
    options = dict(settings(fakeapi), namespaces=[], label_selector=None, filter=None, snapshot=None,
                   address_types=['InternalIP'], frontend_port='service_port', api_timeout=5,
                   page_size=10, allow_no_nodes=False)
    model = _collect.collect_model(options.get)
    assert model['excluded_services'] == []
    assert [(b['name'], b['port_name']) for b in model['backends']] == [
        ('shop.metrics.9100', 'http-metrics-api'), ('shop.metrics.9101', '9101'), ('shop.x.8200', '8200-8080')]


def test_no_eligible_node_stops_the_run_unless_allowed(fakeapi):
    fakeapi.load_list(objects.cluster_list([
        objects.node('node-1', internal_ips='10.0.0.1', ready=False),
        objects.service('a', 'shop', type='NodePort', ports=[81]),
    ]))
    options = dict(settings(fakeapi), namespaces=[], label_selector=None, filter=None, snapshot=None,
                   address_types=['InternalIP'], frontend_port='service_port', api_timeout=5,
                   page_size=10, allow_no_nodes=False)
    with pytest.raises(_client.KubeError) as caught:
        _collect.collect_model(options.get)
    assert 'no node is eligible' in str(caught.value) and 'node-1: not Ready' in str(caught.value)
    options['allow_no_nodes'] = True
    assert _collect.collect_model(options.get)['nodes'] == []


def test_a_kubeconfig_given_as_its_content_works_like_the_file(cluster, tmp_path):
    import yaml
    content = yaml.safe_load(cluster.write_kubeconfig(tmp_path / 'config', context='edge').read_text())
    client = _client.KubeClient(dict(settings(cluster, host=None, api_key=None, ca_cert=None), kubeconfig=content))
    assert len(client.list('nodes', _cluster.slim_node)[0]) == 7
    with pytest.raises(_client.KubeError, match='kubeconfig must be the path of a kubeconfig file or its content'):
        _client.KubeClient(dict(settings(cluster), kubeconfig=['not', 'a', 'kubeconfig']))


class ConnectProxy:
    """An HTTP proxy on loopback that tunnels CONNECT requests and records each one's request
    line and Proxy-Authorization header."""

    def __init__(self):
        import socket
        import threading
        self.seen, self.listener = [], socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(8)
        self.url = 'http://127.0.0.1:%d' % self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import socket
        import threading
        while True:
            try:
                client, dummy = self.listener.accept()
            except OSError:
                return
            head = b''
            while b'\r\n\r\n' not in head:
                part = client.recv(4096)
                if not part:
                    break
                head += part
            lines = head.decode('latin-1').split('\r\n')
            auth = next((line.split(':', 1)[1].strip() for line in lines if line.lower().startswith('proxy-authorization:')),
                        None)
            self.seen.append((lines[0], auth))
            host, port = lines[0].split()[1].rsplit(':', 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def test_the_proxy_its_headers_and_no_proxy_are_used_as_kubernetes_core_uses_them(cluster):
    import base64
    proxy = ConnectProxy()
    try:
        through = _client.KubeClient(settings(cluster, proxy=proxy.url,
                                              proxy_headers={'proxy_basic_auth': 'portico:s3cret'}))
        assert len(through.list('nodes', _cluster.slim_node)[0]) == 7
        target = cluster.url.split('//', 1)[1]
        assert proxy.seen and all(line.startswith('CONNECT %s HTTP/' % target) for line, auth in proxy.seen)
        assert all(auth == 'Basic ' + base64.b64encode(b'portico:s3cret').decode() for line, auth in proxy.seen)
        seen = len(proxy.seen)
        # the API server's host in no_proxy: reached directly
        direct = _client.KubeClient(settings(cluster, proxy=proxy.url, no_proxy='localhost,127.0.0.1'))
        assert len(direct.list('nodes', _cluster.slim_node)[0]) == 7 and len(proxy.seen) == seen
        with pytest.raises(_client.KubeError, match='proxy_headers takes basic_auth, proxy_basic_auth, user_agent only'):
            _client.KubeClient(settings(cluster, proxy=proxy.url, proxy_headers={'x-evil': 'y'}))
    finally:
        proxy.close()


def test_impersonation_sends_the_user_and_one_header_per_group(cluster):
    cluster.add_token('impersonator', 'system:serviceaccount:portico:sync', impersonate=True)
    cluster.add_user('lb-viewer', forbidden=['secrets'])
    client = _client.KubeClient(settings(cluster, api_key='impersonator', impersonate_user='lb-viewer',
                                         impersonate_groups=['portico', 'readers']))
    try:
        nodes, dummy = client.list('nodes', lambda o: o['metadata']['name'])
    finally:
        client.close()
    assert nodes
    request = [r for r in cluster.requests if r.path == '/api/v1/nodes'][-1]
    assert (request.user, request.impersonator, request.groups) == (
        'lb-viewer', 'system:serviceaccount:portico:sync', ('portico', 'readers'))


def test_impersonation_without_the_right_is_refused_naming_both_accounts(cluster):
    with pytest.raises(_client.KubeError) as caught:
        _cluster.read_api(settings(cluster, impersonate_user='jane'), _cluster.ServiceFilter())
    assert ('users "jane" is forbidden: User "%s" cannot impersonate resource "users"' % cluster.user) in str(caught.value)


@pytest.mark.parametrize('value, message', [
    ({'impersonate_groups': ['a']}, 'impersonate_groups needs impersonate_user'),
    ({'impersonate_user': 'jane\nx'}, 'control characters'),
    ({'impersonate_user': 'jane', 'impersonate_groups': [3]}, 'must be a list of group names')])
def test_bad_impersonation_is_refused_before_connecting(value, message):
    with pytest.raises(_client.KubeError, match=message):
        _client.impersonation(value)


def test_groups_from_the_environment_are_comma_separated():
    assert _client.impersonation({'impersonate_user': 'jane', 'impersonate_groups': 'a, b,'}) == ('jane', ['a', 'b'])


def test_the_next_page_is_asked_for_from_the_front_of_the_page_it_follows():
    with open(os.path.join(FIXTURES, 'nodes-page1-limit2.json'), 'rb') as handle:
        body = handle.read()  # a real API server's answer, indented
    assert _client.continue_hint(body) == json.loads(body)['metadata']['continue']
    # not where API servers put it: no page is asked for early
    assert _client.continue_hint(b'{"items": [], "kind": "NodeList", "metadata": {"continue": "x"}}') is None
    assert _client.continue_hint(b'{"kind": "NodeList", "apiVersion": "v1", "metadata": {"continue": ') is None


def test_a_page_whose_front_names_another_next_page_is_read_by_its_own_metadata(cluster):
    # the early request follows the first "metadata"; the page says, by its last one, which page is next
    items, metadata = cluster.list_page('nodes', None, {'limit': ['3']})
    body = ('{"kind":"NodeList","apiVersion":"v1","metadata":{"continue":"bogus"},"items":%s,"metadata":%s}'
            % (json.dumps(items), json.dumps(metadata))).encode()
    cluster.fault('/api/v1/nodes', status=200, body=body, times=1)
    nodes, dummy = _client.KubeClient(settings(cluster), page_size=3).list('nodes', _cluster.slim_node)
    assert names(nodes) == ['node-%d' % i for i in range(1, 8)]
