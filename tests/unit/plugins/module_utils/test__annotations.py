"""Per-service annotations: allow-lists, the README table, and the routing they produce."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _annotations, _cluster, _model
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue

README = Path(__file__).resolve().parents[4] / 'README.md'
ROW = re.compile(r'^\| `portico\.io/([a-z-]+)` \| (.*?) \| (.*?) \| (.*?) \|$')


def readme_table():
    section = README.read_text().split('## Per-service annotations', 1)[1].split('\n## ', 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line.replace('\\|', '\x00'))
        if match:
            rows[match.group(1)] = tuple(g.replace('\x00', '|') for g in match.group(2, 3))
    return rows


def test_the_readme_table_matches_the_code():
    documented = readme_table()
    assert list(documented) == list(_annotations.ANNOTATIONS)
    for name, (parser, values, default) in _annotations.ANNOTATIONS.items():
        assert documented[name] == (values, default), name


VALID = {
    'expose': ['true', 'false'], 'mode': ['tcp', 'http'],
    'balance': ['roundrobin', 'leastconn', 'source', 'first'],
    'check': ['tcp', 'http'], 'check-path': ['/', '/healthz', '/a/b?x=1&y=2'],
    'check-method': ['GET', 'HEAD', 'OPTIONS'], 'check-status': ['100', '204', '599'],
    'check-interval': ['100ms', '2s', '1h'], 'check-rise': ['1', '100'], 'check-fall': ['3'],
    'proxy-protocol': ['none', 'v1', 'v2'], 'accept-proxy': ['true', 'false'],
    'timeout-connect': ['5s', '1ms'], 'timeout-client': ['1m', '24h'], 'timeout-server': ['30s'],
    'timeout-tunnel': ['1h', '1d'], 'maxconn': ['1', '1000000'],
    'frontend-port': ['8080', 'http=8080', 'http=8080,443=8443'], 'bind-address': ['10.0.0.1', 'fd00::1'],
    'ports': ['http', '80,https', '8200-8080,http-metrics-api', 'a--b'], 'hosts': ['a.example.com', '*.example.com,B.example.com'],
    'tls-secret': ['web-tls', 'a.b-c', 'x' * 170], 'tls-redirect-port': ['80', '8080'],
    'address': ['192.0.2.10', '2001:db8::10'], 'address-pool': ['default', 'pool-2'],
    'allow-shared-ip': ['web', 'Team_A.shared-1', 'k' * 63],
    'host-default': ['true', 'false'],
}
INVALID = {
    'expose': ['yes', 'True', '1', ''], 'mode': ['HTTP', 'udp', 'tcp\n'],
    'balance': ['random', 'hdr()', 'hdr(a b)', 'hdr(x)\nbind :1', 'static-rr'],
    'check': ['ssl', ''], 'check-path': ['healthz', '/a b', '/a\nb', "/a'b", '/a"b', '/#x', '/' + 'a' * 300],
    'check-method': ['get', 'POST', 'GET /x'], 'check-status': ['99', '600', '2OO', '-1', '200 '],
    'check-interval': ['99ms', '2', '2 s', '2h', '1.5s'], 'check-rise': ['0', '101', 'x'],
    'check-fall': ['', '1e2'], 'proxy-protocol': ['v3', 'true'], 'accept-proxy': ['on'],
    'timeout-connect': ['0', '25h', '5 s', 'never'], 'timeout-client': ['-1s'],
    'timeout-server': ['1y'], 'timeout-tunnel': ['2d'], 'maxconn': ['0', '1000001', '1,000'],
    'frontend-port': ['0', '65536', 'http', 'http=', 'http=x', 'http=80,http=81', 'Bad Name=80'],
    'bind-address': ['*', 'localhost', '10.0.0.1:80', '[::1]', ''],
    'ports': ['', 'http,,https', 'Bad Name', '70000', '123456789', 'p' * 64, '-http'],
    'hosts': ['', 'a..b', '-a.example.com', '*.com', 'a.*.com', 'a b.com', 'a.example.com,A.example.com',
              'exämple.com', 'a.example.com\n', '*'],
    'tls-secret': ['', 'Web-TLS', 'a..b', '-a', 'a_b', '../etc/passwd', 'ns/name', 'a b', 'x' * 171, 'a\n'],
    'tls-redirect-port': ['0', '65536', 'http', '80,443'],
    'address': ['192.0.2.10/32', 'fe80::1%eth0', 'host.example', ''],
    'address-pool': ['Default', 'a_b', '-x', '', 'p' * 64],
    'allow-shared-ip': ['', 'a b', 'k' * 64, 'key\n'],
    'host-default': ['yes', 'True', ''],
}


def test_every_annotation_has_examples():
    assert set(VALID) == set(_annotations.ANNOTATIONS) == set(INVALID)


@pytest.mark.parametrize('name,value', [(n, v) for n, vs in VALID.items() for v in vs])
def test_valid_values_are_accepted(name, value):
    context = {'mode': 'http', 'tls-secret': 'web-tls', 'hosts': 'a.example.com'}
    given = {name: value} if name == 'mode' else dict(context, **{name: value})
    settings_, warnings = _annotations.parse_settings(given)
    assert name in settings_ or name.startswith('check-')


@pytest.mark.parametrize('name,value', [(n, v) for n, vs in INVALID.items() for v in vs])
def test_invalid_values_are_rejected_with_the_annotation_named(name, value):
    with pytest.raises(InvalidValue, match=r'annotation portico\.io/%s: ' % re.escape(name)):
        _annotations.parse_settings(dict({'check': 'http'}, **{name: value}))


@settings(max_examples=300)
@given(st.sampled_from(sorted(_annotations.ANNOTATIONS)), st.text(max_size=30))
def test_any_value_is_accepted_only_in_a_safe_form(name, value):
    try:
        parsed, warnings = _annotations.parse_settings(dict({'mode': 'http', 'check': 'http'}, **{name: value}))
    except InvalidValue as exc:
        assert str(exc).startswith('annotation portico.io/%s: ' % name)
        return
    if name not in parsed:
        # a setting that needs another one (tls-redirect-port, host-default) is dropped with a warning
        assert any('portico.io/%s ignored' % name in warning for warning in warnings)
        return
    result = parsed[name]
    for text in (result if isinstance(result, list) else result.values() if isinstance(result, dict) else [result]):
        text = str(text)
        assert text.isascii() and text.isprintable() and ' ' not in text and '#' not in text
        assert '"' not in text and "'" not in text and '\\' not in text
        assert '$' not in text and '{' not in text and not re.search('%(?![0-9A-Fa-f]{2})', text)


def test_balance_uri_needs_http_mode():
    with pytest.raises(InvalidValue, match='needs portico.io/mode http'):
        _annotations.parse_settings({'balance': 'uri'})
    assert _annotations.parse_settings({'balance': 'hdr(X-User)', 'mode': 'http'})[0]['balance'] == 'hdr(X-User)'


def test_unknown_annotations_and_check_details_without_http_check_are_warnings():
    parsed, warnings = _annotations.parse_settings({'colour': 'blue', 'check-path': '/x'})
    assert parsed == {}
    assert warnings == ["unknown annotation portico.io/'colour' ignored",
                        'annotation portico.io/check-path ignored: portico.io/check is not http']


def test_only_annotations_under_the_prefix_are_kept_and_long_values_are_cut():
    obj = {'metadata': {'namespace': 'a', 'name': 'b', 'annotations': {
        'kubectl.kubernetes.io/last-applied-configuration': 'x' * 100000,
        'portico.io/mode': 'http', 'example.com/mode': 'tcp', 'portico.io/hosts': 'a' * 5000}},
        'spec': {'type': 'NodePort'}}
    slim = _cluster.slim_service(obj)
    assert slim['annotations'] == {'mode': 'http', 'hosts': 'a' * 2049}
    assert _cluster.slim_service(obj, 'example.com/')['annotations'] == {'mode': 'tcp'}


@pytest.mark.parametrize('prefix', ['portico.io', '/', 'Portico.io/', 'a b/', ''])
def test_a_bad_prefix_is_refused(prefix):
    with pytest.raises(InvalidValue):
        _annotations.check_prefix(prefix)


# ---------------------------------------------------------------- the model

NODES = [{'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']]}]


def svc(name, created, port, node_port, annotations=None, port_name='http', namespace='a'):
    return {'namespace': namespace, 'name': name, 'created': '2026-01-%02dT00:00:00Z' % created, 'type': 'NodePort',
            'annotations': annotations or {},
            'ports': [{'name': port_name, 'protocol': 'TCP', 'port': port, 'node_port': node_port}]}


def test_a_bad_value_excludes_the_service_with_the_reason():
    model = _model.build_model(NODES, [svc('web', 1, 80, 30080, {'maxconn': '10\nbind :1'})])
    assert model['frontends'] == []
    assert model['excluded_services'] == [{'service': 'a/web', 'port': None, 'reason':
                                           "invalid: annotation portico.io/maxconn: '10\\nbind :1' is not "
                                           "a whole number from 1 to 1000000"}]


def test_expose_by_default_and_the_expose_annotation():
    services = [svc('on', 1, 80, 30080, {'expose': 'true'}), svc('off', 2, 81, 30081, {'expose': 'false'}),
                svc('plain', 3, 82, 30082)]
    model = _model.build_model(NODES, services)
    assert [f['service'] for f in model['frontends']] == ['a/on', 'a/plain']
    model = _model.build_model(NODES, services, {'expose_by_default': False})
    assert [f['service'] for f in model['frontends']] == ['a/on']
    assert [e['reason'] for e in model['excluded_services']] == [
        'not exposed: annotation portico.io/expose is "false"',
        'not exposed: expose_by_default is false and annotation portico.io/expose is not "true"']


def test_ports_and_frontend_port_by_name():
    service = svc('web', 1, 80, 30080, {'ports': 'http,8443', 'frontend-port': 'http=8080,8443=9443'})
    service['ports'] += [{'name': 'https', 'protocol': 'TCP', 'port': 8443, 'node_port': 30443},
                         {'name': 'admin', 'protocol': 'TCP', 'port': 9000, 'node_port': 30900}]
    model = _model.build_model(NODES, [service])
    assert [(f['port'], f['backend']) for f in model['frontends']] == [(8080, 'a.web.80'), (9443, 'a.web.8443')]
    assert model['excluded_services'] == [{'service': 'a/web', 'port': '9000/TCP',
                                           'reason': 'not listed in annotation portico.io/ports'}]


def test_one_frontend_port_for_several_ports_is_refused():
    service = svc('web', 1, 80, 30080, {'frontend-port': '8080'})
    service['ports'].append({'name': 'https', 'protocol': 'TCP', 'port': 443, 'node_port': 30443})
    model = _model.build_model(NODES, [service])
    assert model['frontends'] == [] and 'use name=port' in model['excluded_services'][0]['reason']


def test_http_services_share_a_port_by_host_and_the_older_keeps_a_contested_host():
    services = [svc('one', 1, 80, 30001, {'mode': 'http', 'hosts': 'A.example.com,*.example.com'}),
                svc('two', 2, 80, 30002, {'mode': 'http', 'hosts': 'b.example.com'}),
                svc('three', 3, 80, 30003, {'mode': 'http', 'hosts': 'b.example.com'}),
                svc('tcp', 4, 80, 30004)]
    model = _model.build_model(NODES, list(reversed(services)))
    [frontend] = model['frontends']
    assert (frontend['name'], frontend['mode'], frontend['route_by'], frontend['backend']) == ('hosts.80', 'http', 'host', None)
    assert [(r['match'], r['value'], r['backend']) for r in frontend['routes']] == [
        ('str', 'a.example.com', 'a.one.80'), ('str', 'b.example.com', 'a.two.80'), ('end', '.example.com', 'a.one.80')]
    assert model['excluded_services'] == [
        {'service': 'a/tcp', 'port': '80/TCP', 'reason': 'frontend port 80 is already taken by the older service a/one'},
        {'service': 'a/three', 'port': '80/TCP',
         'reason': 'host b.example.com on frontend port 80 is already routed to the older service a/two'}]


def test_the_oldest_host_default_takes_the_hosts_no_route_names():
    services = [svc('one', 1, 80, 30001, {'mode': 'http', 'hosts': 'a.example.com'}),
                svc('two', 2, 80, 30002, {'mode': 'http', 'hosts': 'b.example.com', 'host-default': 'true'}),
                svc('three', 3, 80, 30003, {'mode': 'http', 'hosts': 'c.example.com', 'host-default': 'true'}),
                svc('alone', 4, 81, 30004, {'host-default': 'true'})]
    model = _model.build_model(NODES, list(reversed(services)))
    assert [(f['name'], f['backend']) for f in model['frontends']] == [('hosts.80', 'a.two.80'), ('a.alone.81', 'a.alone.81')]
    assert [(w['service'], w['reason']) for w in model['warnings']] == [
        ('a/alone', 'annotation portico.io/host-default ignored: it needs portico.io/hosts'),
        ('a/three', 'annotation host-default ignored: port 80 already sends other hosts to a.two.80, of an older service')]


def test_tcp_services_with_hosts_share_a_port_by_sni():
    services = [svc('one', 1, 443, 30001, {'hosts': 'one.example.com'}),
                svc('two', 2, 443, 30002, {'hosts': 'two.example.com', 'mode': 'tcp'})]
    model = _model.build_model(NODES, services)
    [frontend] = model['frontends']
    assert (frontend['name'], frontend['mode'], frontend['route_by']) == ('sni.443', 'tcp', 'sni')
    assert [r['backend'] for r in frontend['routes']] == ['a.one.443', 'a.two.443']


def test_allocation_is_stable_avoids_reserved_and_wanted_ports_and_stays_in_range():
    services = [svc('old', 1, 80, 30001), svc('new', 2, 80, 30002), svc('newer', 3, 80, 30003),
                svc('other', 4, 20005, 30004)]
    options = {'port_conflict': 'allocate', 'allocate_range': '20000-20009', 'reserved_ports': [20001, 20002]}
    model = _model.build_model(NODES, services, options)
    ports = {f['service']: f['port'] for f in model['frontends']}
    assert ports['a/old'] == 80 and ports['a/other'] == 20005
    for name in ('a/new', 'a/newer'):
        assert 20000 <= ports[name] <= 20009 and ports[name] not in (20001, 20002, 20005)
    assert len(set(ports.values())) == 4
    assert any('allocated frontend port %d' % ports['a/new'] in w['reason'] for w in model['warnings'])
    # the same services in any order, and an unrelated younger service, change nothing
    again = _model.build_model(NODES, list(reversed(services)) + [svc('late', 9, 9999, 30009)], options)
    assert {f['service']: f['port'] for f in again['frontends'] if f['service'] != 'a/late'} == ports


def test_a_full_range_and_a_reserved_port_exclude_with_the_reason():
    services = [svc('old', 1, 80, 30001), svc('new', 2, 80, 30002), svc('stats', 3, 8404, 30003)]
    model = _model.build_model(NODES, services, {'port_conflict': 'allocate', 'allocate_range': '20000-20000',
                                                 'reserved_ports': [8404]})
    assert sorted(f['port'] for f in model['frontends']) == [80, 20000]
    assert model['excluded_services'] == [{
        'service': 'a/stats', 'port': '8404/TCP',
        'reason': 'frontend port 8404 is reserved by the base configuration; no free port left in allocate_range 20000-20000'}]


@pytest.mark.parametrize('value', ['1023-2000', '30000-20000', '20000-70000', 'x', '1-2-3'])
def test_a_bad_allocate_range_is_refused(value):
    with pytest.raises(InvalidValue):
        _model.allocate_range(value)


def test_settings_reach_the_model():
    model = _model.build_model(NODES, [svc('web', 1, 80, 30080, {
        'mode': 'http', 'balance': 'leastconn', 'check': 'http', 'check-path': '/ready', 'check-status': '204',
        'check-interval': '5s', 'check-rise': '2', 'check-fall': '4', 'proxy-protocol': 'v2', 'accept-proxy': 'true',
        'timeout-server': '2m', 'maxconn': '500', 'bind-address': '192.0.2.1'})])
    [frontend], [backend] = model['frontends'], model['backends']
    assert (frontend['mode'], frontend['bind_address'], frontend['accept_proxy'], frontend['maxconn']) == (
        'http', '192.0.2.1', True, 500)
    assert backend['check'] == {'type': 'http', 'path': '/ready', 'status': 204, 'interval': '5s', 'rise': 2, 'fall': 4}
    assert (backend['mode'], backend['balance'], backend['proxy_protocol'], backend['timeout_server']) == (
        'http', 'leastconn', 'v2', '2m')
