"""Nothing a cluster user writes reaches haproxy.cfg unchecked.

Hostile names, labels, ports and addresses go through the real collection code and the role's
real template; the result always passes `haproxy -c`, holds exactly the lines the model
predicts, and every rejected value is reported with a reason.
"""

import subprocess

from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _annotations, _cluster, _model
from tests.support.render import render

HOSTILE = ['web', 'db-1', 'a\nbind :1', 'x\r', 'nul\x00', 'sp ace', '#c', '"q"', "'q'", 'back\\slash',
           'l' * 300, 'wеb', 'ｗｅｂ', 'server', 'frontend', 'listen x', '', '-x', 'x.y', 'UPPER']


def mostly(valid, hostile):
    # Valid four times in five, so most examples render frontends next to the hostile values.
    return st.integers(0, 4).flatmap(lambda pick: hostile if pick == 0 else valid)


text = mostly(st.sampled_from(['web', 'shop', 'db-1', 'api', 'w1', 'w2']),
              st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12)))
port = mostly(st.integers(1, 65535), st.one_of(st.integers(-5, 70000), st.sampled_from(['80', None, True, 1.5])))
address = mostly(st.ip_addresses().map(str), st.one_of(text, st.sampled_from(['10.0.0.1 backup', '[::1]', '1.2.3.4:80'])))


GOOD = {
    'expose': ['true', 'false'], 'mode': ['tcp', 'http', 'http'], 'balance': ['leastconn', 'source', 'first', 'uri', 'hdr(X-User)'],
    'check': ['tcp', 'http'], 'check-path': ['/', '/healthz?full=1', '/a(b);c=d'], 'check-method': ['HEAD', 'OPTIONS'],
    'check-status': ['204', '599'], 'check-interval': ['500ms', '1h'], 'check-rise': ['1', '100'], 'check-fall': ['7'],
    'proxy-protocol': ['none', 'v1', 'v2'], 'accept-proxy': ['true', 'false'], 'timeout-connect': ['5s', '1d'],
    'timeout-client': ['1m', '500us'], 'timeout-server': ['30s'], 'timeout-tunnel': ['1h'], 'maxconn': ['1', '1000000'],
    'frontend-port': ['8080', 'web=8081', '80=8082,web=8083'], 'bind-address': ['10.0.0.1', 'fd00::1', '::'],
    'ports': ['web', '80,shop'], 'hosts': ['a.example.com', '*.example.com,A.Example.com', 'b.example.com'],
}
annotation_values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12),
                              st.sampled_from(['10s\nbind :1', 'hdr(a b)', '/x y', '1 backup', 'a.com #x']))


@st.composite
def annotations(draw):
    keys = draw(st.lists(st.sampled_from(sorted(GOOD) + ['unknown']), max_size=6, unique=True))
    return dict(('portico.io/' + key, draw(mostly(st.sampled_from(GOOD.get(key, ['x'])), annotation_values)))
                for key in keys)


@st.composite
def cluster(draw):
    nodes = [{'kind': 'Node', 'metadata': {'name': draw(text), 'labels': {draw(text): draw(text)}},
              'status': {'conditions': [{'type': 'Ready', 'status': 'True'}],
                         'addresses': [{'type': draw(mostly(st.just('InternalIP'), st.just('Hostname'))),
                                        'address': draw(address)}]}}
             for dummy in range(draw(st.integers(1, 4)))]
    services = [{'kind': 'Service',
                 'metadata': {'namespace': draw(text), 'name': draw(text),
                              'annotations': dict(draw(annotations()), **{draw(text): draw(text)}),
                              'creationTimestamp': draw(st.sampled_from(['2026-01-01T00:00:00Z', draw(text)]))},
                 'spec': {'type': draw(st.sampled_from(['NodePort', 'LoadBalancer'])),
                          'externalTrafficPolicy': draw(st.sampled_from(['Cluster', 'Local', draw(text)])),
                          'healthCheckNodePort': draw(port),
                          'ports': [{'name': draw(text), 'protocol': draw(mostly(st.just('TCP'), st.sampled_from(['UDP', 'SCTP', 'tcp', 'TCP\n']))),
                                     'port': draw(port), 'nodePort': draw(port)}
                                    for dummy in range(draw(st.integers(0, 3)))]}}
                for dummy in range(draw(st.integers(0, 5)))]
    return nodes, services


def expected_lines(model):
    """The non-comment lines of the generated part, predicted from the model alone."""
    addresses = {n['name']: n['address'] for n in model['nodes']}
    lines = []
    for frontend in model['frontends']:
        lines += ['frontend %s' % frontend['name'], '    mode %s' % frontend['mode'],
                  '    bind %s:%d%s' % (frontend['bind_address'] or '127.0.0.1', frontend['port'],
                                        ' accept-proxy' if frontend['accept_proxy'] else '')]
        if frontend['maxconn']:
            lines.append('    maxconn %d' % frontend['maxconn'])
        if frontend['timeout_client']:
            lines.append('    timeout client %s' % frontend['timeout_client'])
        if frontend['route_by'] == 'host':
            lines.append('    http-request set-var(txn.host) req.hdr(host),field(1,:),lower')
            lines += ['    use_backend %s if { var(txn.host) -m %s %s }' % (r['backend'], r['match'], r['value'])
                      for r in frontend['routes']]
        elif frontend['route_by'] == 'sni':
            lines += ['    tcp-request inspect-delay 5s', '    tcp-request content accept if { req.ssl_hello_type 1 }']
            lines += ['    use_backend %s if { req.ssl_sni -i -m %s %s }' % (r['backend'], r['match'], r['value'])
                      for r in frontend['routes']]
        else:
            lines.append('    default_backend %s' % frontend['backend'])
    for backend in model['backends']:
        lines += ['backend %s' % backend['name'], '    mode %s' % backend['mode'], '    balance %s' % backend['balance']]
        lines += ['    timeout %s %s' % (name, backend['timeout_' + name]) for name in ('connect', 'server', 'tunnel')
                  if backend['timeout_' + name]]
        check = backend['check']
        suffix = ' check' + ''.join(' %s %s' % (word, check[key]) for word, key in
                                    (('port', 'port'), ('inter', 'interval'), ('rise', 'rise'), ('fall', 'fall'))
                                    if key in check)
        suffix += {'none': '', 'v1': ' send-proxy', 'v2': ' send-proxy-v2'}[backend['proxy_protocol']]
        if check['type'] == 'http':
            lines += ['    option httpchk %s %s' % (check.get('method', 'GET'), check['path']),
                      '    http-check expect status %d' % check.get('status', 200)]
            if backend['proxy_protocol'] != 'none':
                suffix += ' check-send-proxy'
        names = sorted(addresses) if backend['nodes'] == 'all' else backend['nodes']
        lines += ['    server %s %s:%d%s' % (name, addresses[name], backend['node_port'], suffix) for name in names]
    return lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cluster(), st.sampled_from(['exclude', 'allocate']))
def test_hostile_values_never_reach_the_config(tmp_path_factory, state, port_conflict):
    raw_nodes, raw_services = state
    nodes = [_cluster.slim_node(n) for n in raw_nodes]
    services = [s for s in (_cluster.ServiceFilter()(obj) for obj in raw_services) if s is not None]
    options = {'include_control_plane': True, 'port_conflict': port_conflict, 'reserved_ports': [8404]}
    model = _model.build_model(nodes, services, options, {'kind': 'api', 'server': 'https://127.0.0.1:6443'})
    config = render(model)
    generated = config.split('# Generated by portico.k8s.haproxy_sync')[1].split('\n', 1)[1]
    lines = [line for line in generated.splitlines() if line and not line.startswith('#')]
    assert lines == expected_lines(model)
    for line in config.splitlines():
        assert '\x00' not in line and '\r' not in line
        assert line.isascii()
    # every node and service port that is not in the model is reported with a reason
    assert len(model['nodes']) + len(model['excluded_nodes']) == len(nodes)
    assert all(e['reason'] for e in model['excluded_nodes'] + model['excluded_services'])
    # every service is routed or excluded; a bad annotation value is excluded naming the annotation
    routed = {s for f in model['frontends'] for s in f['service'].split(', ')}
    for service in services:
        service_id = '%s/%s' % (service['namespace'], service['name'])
        try:
            _annotations.parse_settings(service['annotations'])
        except _annotations.InvalidValue:
            assert service_id not in routed
            assert any(e['service'] == service_id and e['port'] is None for e in model['excluded_services'])
    assert 8404 not in [f['port'] for f in model['frontends']]
    event('%s frontends shared by host' % ('some' if any(f['route_by'] for f in model['frontends']) else 'no'))
    event('renders %s frontends' % ('some' if model['frontends'] else 'no'))
    if model['frontends']:
        path = tmp_path_factory.mktemp('cfg') / 'haproxy.cfg'
        path.write_text(config)
        result = subprocess.run(['haproxy', '-c', '-f', str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr + config


def test_a_newline_in_a_name_is_reported_not_rendered():
    obj = {'kind': 'Service', 'metadata': {'namespace': 'shop', 'name': 'web\nlisten evil'},
           'spec': {'type': 'NodePort', 'ports': [{'protocol': 'TCP', 'port': 80, 'nodePort': 30080}]}}
    model = _model.build_model([], [_cluster.slim_service(obj)], {}, {'kind': 'snapshot', 'snapshot': 'c.json'})
    assert model['excluded_services'] == [{'service': 'shop/web\nlisten evil', 'port': None,
                                           'reason': "invalid: service name 'web\\nlisten evil' is not a DNS-1035 label"}]
    assert 'listen evil' not in render(model)
