"""Nothing a cluster user writes reaches haproxy.cfg unchecked.

Hostile names, labels, ports, annotations, hosts, Secret names and addresses go through the real
collection code and the real renderer; the result always passes `haproxy -c`, holds exactly the
lines the model predicts, and every rejected value is reported with a reason. The generators
include what parsers accept but a human would not expect: IPv6 zone ids of any text, IPv4-mapped
IPv6, line breaks of every kind, HAProxy's own syntax (``%[``, ``${``, ``.if``, ``program``),
quotes and very long values.
"""

import subprocess

from hypothesis import HealthCheck, event, given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _annotations, _cluster, _haproxy, _model, _tls
from tests.fakeapi import objects
from tests.support import tls
from tests.support.render import render

HOSTILE = ['web', 'db-1', 'a\nbind :1', 'x\r', 'nul\x00', 'sp ace', '#c', '"q"', "'q'", 'back\\slash',
           'l' * 300, 'wеb', 'ｗｅｂ', 'server', 'frontend', 'listen x', '', '-x', 'x.y', 'UPPER',
           'a\u2028b', 'a\x85b', 'a\u2029b', 'a\x0bb', 'a\x0cb', '%[src]', '${HOME}', '"${X}"', '.if 1', '.endif',
           'program', 'program p\n    command touch pwned', 'global', 'setenv A b', 'lua-load x', 'x' * 5000,
           'fe80::1%eth0', '::1:8080%x#', '::ffff:7f00:7:8080%lo#', '::ffff:10.0.0.1', '10.0.0.1%x',
           'fe80::1%\nprogram p\n    command touch pwned\nfrontend tail\n    mode tcp#', 'a.example.com #x',
           'a.example.com\n    use_backend x', '*.', '*.*.example.com', 'xn--e1awd7f.com', '10.0.0.1:80']
ATTACKS = ['::1:1%x#\nprogram p\n    command touch pwned\n#', '::ffff:7f00:7:8080%x#', 'fe80::1%eth0',
           'fd00::1%\u2028x', '::ffff:127.0.0.1', '127.0.0.1\n', '10.0.0.1 backup', '[::1]', '1.2.3.4:80']


CERTIFICATE = _tls.read_tls_secret(objects.tls_secret(
    'web-tls', 'web', **dict(zip(('cert_pem', 'key_pem'), tls.certificate(['a.example.com', '*.example.com'])[:2]))))


def mostly(valid, hostile):
    # Valid four times in five, so most examples render frontends next to the hostile values.
    return st.integers(0, 4).flatmap(lambda pick: hostile if pick == 0 else valid)


text = mostly(st.sampled_from(['web', 'shop', 'db-1', 'api', 'w1', 'w2']),
              st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12)))
port = mostly(st.integers(1, 65535), st.one_of(st.integers(-5, 70000), st.sampled_from(['80', None, True, 1.5])))
# an IPv6 address with a zone id: "%" and then any text, which Python's ipaddress accepts
zoned = st.builds(lambda a, zone: '%s%%%s' % (a.compressed, zone), st.ip_addresses(v=6),
                  st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE)))
mapped = st.ip_addresses(v=4).map(lambda a: '::ffff:%s' % a)
address = mostly(st.ip_addresses().map(str), st.one_of(text, zoned, mapped, st.sampled_from(ATTACKS)))


GOOD = {
    'expose': ['true', 'false'], 'mode': ['tcp', 'http', 'http'], 'balance': ['leastconn', 'source', 'first', 'uri', 'hdr(X-User)'],
    'check': ['tcp', 'http'], 'check-path': ['/', '/healthz?full=1', '/a(b);c=d'], 'check-method': ['HEAD', 'OPTIONS'],
    'check-status': ['204', '599'], 'check-interval': ['500ms', '1h'], 'check-rise': ['1', '100'], 'check-fall': ['7'],
    'proxy-protocol': ['none', 'v1', 'v2'], 'accept-proxy': ['true', 'false'], 'timeout-connect': ['5s', '1d'],
    'timeout-client': ['1m', '500us'], 'timeout-server': ['30s'], 'timeout-tunnel': ['1h'], 'maxconn': ['1', '1000000'],
    'frontend-port': ['8080', 'web=8081', '80=8082,web=8083'], 'bind-address': ['10.0.0.1', 'fd00::1', '::'],
    'ports': ['web', '80,shop'], 'hosts': ['a.example.com', '*.example.com,A.Example.com', 'b.example.com'],
    # missing-tls names a Secret the cluster does not have
    'tls-secret': ['web-tls', 'shop-tls', 'missing-tls'], 'tls-redirect-port': ['80', '8080'],
    'host-default': ['true', 'false'],
}
annotation_values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12), zoned, mapped, st.sampled_from(ATTACKS),
                              st.sampled_from(['10s\nbind :1', 'hdr(a b)', '/x y', '1 backup', 'a.com #x', '/%[src]',
                                               '/a%zz', '/ok%2F', 'hdr(X-A)\n.if 1', '80,web\nprogram p']))


@st.composite
def annotations(draw):
    keys = draw(st.lists(st.sampled_from(sorted(GOOD) + ['unknown']), max_size=6, unique=True))
    return dict(('portico.io/' + key, draw(mostly(st.sampled_from(GOOD.get(key, ['x'])), annotation_values)))
                for key in keys)


@st.composite
def cluster(draw):
    nodes = [{'kind': 'Node', 'metadata': {'name': draw(text), 'labels': {draw(text): draw(text)}},
              'status': {'conditions': [{'type': 'Ready', 'status': 'True'}],
                         'addresses': [{'type': draw(mostly(st.just('InternalIP'), st.sampled_from(
                             ['Hostname', 'ExternalIP', 'InternalDNS']))), 'address': draw(address)}]}}
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


# The first word of every generated line.
LINE_KEYWORDS = {'frontend', 'backend', 'mode', 'bind', 'maxconn', 'timeout', 'http-request', 'tcp-request',
                 'use_backend', 'default_backend', 'balance', 'hash-type', 'option', 'http-check', 'server'}


def resolve_later(address):
    """A node known by a DNS name starts in maintenance if the name does not resolve (not a failed file)."""
    is_ip = address.startswith('[') or all(part.isdigit() for part in address.split('.'))
    return '' if is_ip else ' init-addr last,libc,none'


def redirect_port(port):
    return '' if port == 443 else ':%d' % port


def expected_lines(model, cert_dir):
    """The non-comment lines of the generated part, predicted from the model alone."""
    addresses = {n['name']: n['address'] for n in model['nodes']}
    lines = []
    for frontend in model['frontends']:
        tls = frontend['tls']
        bind_tls = ''.join(' crt %s/%s' % (cert_dir, name) for name in tls['certificates']) if tls else ''
        if tls:
            bind_tls = ' ssl' + bind_tls + (' alpn h2,http/1.1' if frontend['mode'] == 'http' else '')
        lines += ['frontend %s' % frontend['name'], '    mode %s' % frontend['mode'],
                  '    bind %s:%d%s%s' % (frontend['bind_address'] or '127.0.0.1', frontend['port'],
                                          ' accept-proxy' if frontend['accept_proxy'] else '', bind_tls)]
        if frontend['maxconn']:
            lines.append('    maxconn %d' % frontend['maxconn'])
        if frontend['timeout_client']:
            lines.append('    timeout client %s' % frontend['timeout_client'])
        if frontend['mode'] == 'http':
            lines.append('    http-request set-header X-Forwarded-Proto %s' % ('https' if tls else 'http'))
        if frontend['route_by'] == 'host' or frontend['redirect_port']:
            lines.append('    http-request set-var(txn.host) req.hdr(host),field(1,:),lower')
        if frontend['redirect_port']:
            lines.append('    http-request redirect code 308 location https://%%[var(txn.host)]%s%%[pathq] '
                         'if { var(txn.host) -m reg ^[a-z0-9.-]+$ }' % redirect_port(frontend['redirect_port']))
        elif frontend['route_by'] == 'host':
            lines += ['    http-request redirect code 308 location https://%%[var(txn.host)]%s%%[pathq] if '
                      '{ var(txn.host) -m %s %s } { var(txn.host) -m reg ^[a-z0-9.-]+$ }'
                      % (redirect_port(r['redirect_port']), r['match'], r['value'])
                      for r in frontend['routes'] if r['redirect_port']]
            lines += ['    use_backend %s if { var(txn.host) -m %s %s }' % (r['backend'], r['match'], r['value'])
                      for r in frontend['routes'] if r['backend']]
        elif frontend['route_by'] == 'sni' and tls:
            lines += ['    use_backend %s if { ssl_fc_sni -i -m %s %s }' % (r['backend'], r['match'], r['value'])
                      for r in frontend['routes']]
        elif frontend['route_by'] == 'sni':
            lines += ['    tcp-request inspect-delay 5s', '    tcp-request content accept if { req.ssl_hello_type 1 }']
            lines += ['    use_backend %s if { req.ssl_sni -i -m %s %s }' % (r['backend'], r['match'], r['value'])
                      for r in frontend['routes']]
        if frontend['backend']:
            lines.append('    default_backend %s' % frontend['backend'])
    # hashing backends: consistent hashing, each node's server id fixed by its name
    ids = _haproxy.server_ids(list(addresses) + [n['name'] for n in model['draining_nodes']])
    for backend in model['backends']:
        hashed = backend['balance'].startswith(('source', 'uri', 'hdr('))
        lines += ['backend %s' % backend['name'], '    mode %s' % backend['mode'], '    balance %s' % backend['balance']]
        lines += ['    hash-type consistent'] if hashed else []
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
        lines += ['    server %s %s:%d%s%s%s' % (name, addresses[name], backend['node_port'], suffix,
                                                 ' id %d' % ids[name] if hashed else '', resolve_later(addresses[name]))
                  for name in names]
        if backend['nodes'] == 'all':
            # nodes that left drain: no new connections
            lines += ['    server %s %s:%d%s weight 0%s%s' % (
                n['name'], n['address'], backend['node_port'], suffix, ' id %d' % ids[n['name']] if hashed else '',
                resolve_later(n['address']))
                for n in model['draining_nodes']]
    return lines


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cluster(), st.sampled_from(['exclude', 'allocate']), st.lists(st.tuples(text, address), max_size=2))
def test_hostile_values_never_reach_the_config(tmp_path_factory, state, port_conflict, drained):
    raw_nodes, raw_services = state
    nodes = [_cluster.slim_node(n) for n in raw_nodes]
    services = [s for s in (_cluster.ServiceFilter()(obj) for obj in raw_services) if s is not None]
    options = {'include_control_plane': True, 'port_conflict': port_conflict, 'reserved_ports': [8404],
               'address_types': ['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS'],
               # nodes served last run come back from the controller's drain state file
               'drain_state': {'nodes': [{'name': draw_name, 'address': draw_address}
                                         for draw_name, draw_address in drained]}, 'drain_seconds': 60}
    model, config = model_and_config(nodes, services, options, tmp_path_factory)
    # every node and service port that is not in the model is reported with a reason
    assert len(model['nodes']) + len(model['excluded_nodes']) == len(nodes)
    for node in model['nodes'] + model['draining_nodes']:
        assert '%' not in node['address'] and not node['address'].startswith('[::ffff:')
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
    event('%s TLS frontends' % ('some' if model['certificates'] else 'no'))
    if model['frontends']:
        assert_haproxy_accepts(config, tmp_path_factory)


def model_and_config(nodes, services, options, tmp_path_factory):
    """The model and the rendered file; its generated lines are exactly those the model predicts."""
    # Every Secret a service names exists, except missing-tls; all hold one real certificate.
    cert_dir = tmp_path_factory.mktemp('certs')
    secrets = {}
    for key in _cluster.wanted_secrets(services):
        secrets[key] = {'error': 'Secret %s/%s not found' % key} if key[1] == 'missing-tls' else \
            dict(CERTIFICATE[1], secret='%s/%s' % key, file=_tls.certificate_file(*key, version='0123456789ab'))
    model = _model.build_model(nodes, services, options, {'kind': 'api', 'server': 'https://127.0.0.1:6443'},
                               None, secrets)
    for certificate in model['certificates']:
        (cert_dir / certificate['file']).write_bytes(CERTIFICATE[0])
    config = render(model, cert_dir=str(cert_dir))
    generated = config.split('# Generated by portico.k8s.haproxy_sync')[1].split('\n', 1)[1]
    # split on "\n" alone: str.splitlines would also split on U+2028, U+0085 and others
    lines = [line for line in generated.split('\n') if line and not line.startswith('#')]
    assert lines == expected_lines(model, cert_dir)
    for line in config.split('\n'):
        assert line.isascii() and (line == '' or line.isprintable())
    for line in lines:
        # only the fixed redirect text has "%" and "{"; no value brings quotes, "$", "#" or a keyword of its own
        values = line.replace('%[var(txn.host)]', '').replace('%[pathq]', '').replace('^[a-z0-9.-]+$', '')
        assert not any(c in values for c in '"\'\\$#`%')
        assert line.split()[0] in LINE_KEYWORDS
    return model, config


def assert_haproxy_accepts(config, tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'haproxy.cfg'
    path.write_text(config)
    result = subprocess.run(['haproxy', '-c', '-f', str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr + config


TLS_KEYS = ['mode', 'hosts', 'tls-secret', 'tls-redirect-port', 'frontend-port', 'balance', 'host-default']


@st.composite
def tls_services(draw):
    """Valid services whose annotations mix TLS termination, redirects, hosts and modes."""
    services = []
    for index in range(draw(st.integers(1, 6))):
        keys = draw(st.lists(st.sampled_from(TLS_KEYS), min_size=1, max_size=5, unique=True))
        annotations = dict((key, draw(mostly(st.sampled_from(GOOD[key]), annotation_values))) for key in keys)
        services.append({'namespace': draw(st.sampled_from(['web', 'shop'])), 'name': 'svc%d' % index,
                         'created': '2026-01-0%dT00:00:00Z' % draw(st.integers(1, 3)), 'type': 'NodePort',
                         'ports': [{'name': 'web', 'protocol': 'TCP', 'port': draw(st.sampled_from([80, 443, 8443])),
                                    'node_port': 30000 + index}],
                         'external_traffic_policy': 'Cluster', 'health_check_node_port': None,
                         'annotations': annotations})
    return services


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tls_services(), st.sampled_from(['exclude', 'allocate']))
def test_tls_termination_and_redirects_render_what_the_model_says(tmp_path_factory, services, port_conflict):
    nodes = [{'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']], 'labels': {}, 'taints': [],
              'unschedulable': False, 'deleting': False}]
    model, config = model_and_config(nodes, services, {'port_conflict': port_conflict}, tmp_path_factory)
    # one certificate file per Secret in use, each bound by at least one frontend
    bound = set(f for frontend in model['frontends'] for f in (frontend['tls'] or {}).get('certificates', []))
    assert bound == set(c['file'] for c in model['certificates'])
    # a redirect points at a port that serves TLS
    tls_ports = set(f['port'] for f in model['frontends'] if f['tls'])
    redirects = [f['redirect_port'] for f in model['frontends'] if f['redirect_port']]
    redirects += [r['redirect_port'] for f in model['frontends'] for r in f['routes'] if r['redirect_port']]
    assert set(redirects) <= tls_ports
    event('%s TLS frontends' % ('some' if tls_ports else 'no'))
    event('%s redirects' % ('some' if redirects else 'no'))
    if model['frontends']:
        assert_haproxy_accepts(config, tmp_path_factory)


def test_a_newline_in_a_name_is_reported_not_rendered():
    obj = {'kind': 'Service', 'metadata': {'namespace': 'shop', 'name': 'web\nlisten evil'},
           'spec': {'type': 'NodePort', 'ports': [{'protocol': 'TCP', 'port': 80, 'nodePort': 30080}]}}
    model = _model.build_model([], [_cluster.slim_service(obj)], {}, {'kind': 'snapshot', 'snapshot': 'c.json'})
    assert model['excluded_services'] == [{'service': 'shop/web\nlisten evil', 'port': None,
                                           'reason': "invalid: service name 'web\\nlisten evil' is not a DNS-1035 label"}]
    assert 'listen evil' not in render(model)
