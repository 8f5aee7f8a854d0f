"""The metrics frontend: the operator's settings checked, the section HAProxy validates, and never
on an address or a port that serves the cluster's Services."""

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _addresses, _config, _haproxy, _metrics, _model
from tests.support.haproxy import check_config, minimal_config

HASH = '$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.'


def given_settings(**values):
    settings = {'address': '10.0.0.11', 'port': 8404, 'users': [{'name': 'prometheus', 'password': HASH}],
                'allow': ['10.0.9.0/24']}
    settings.update(values)
    return settings


def test_off_without_an_address():
    assert _metrics.settings(None) is None
    assert _metrics.settings({'address': '', 'port': 8404, 'users': [], 'allow': []}) is None
    assert _metrics.render(None) == ''


def test_settings_are_checked_and_normalised():
    checked = _metrics.settings(given_settings(address='[2001:db8::0:11]', allow=['2001:db8::/64', '10.0.9.7/24',
                                                                                  '10.0.9.0/24', '192.0.2.1']))
    assert checked == {'address': '2001:db8::11', 'port': 8404, 'users': [('prometheus', HASH)],
                       'allow': ['2001:db8::/64', '10.0.9.0/24', '192.0.2.1']}
    assert _metrics.bind(checked) == '[2001:db8::11]:8404'
    # a port given as text (from an inventory) is taken as the number
    assert _metrics.settings(given_settings(port='9000'))['port'] == 9000


@pytest.mark.parametrize('values,message', [
    ({'address': '*'}, 'would serve the metrics on every address'),
    ({'address': '0.0.0.0'}, 'would serve the metrics on every address'),
    ({'address': 'lb1.example.com'}, 'is not an IP address'),
    ({'address': 'fe80::1%eth0'}, 'zone id'),
    ({'address': '224.0.0.1'}, 'is not an address of this host'),
    ({'port': 0}, 'is not a port from 1 to 65535'),
    ({'port': True}, 'is not a port from 1 to 65535'),
    ({'users': [{'name': 'prometheus', 'password': 'secret'}]}, 'must be a crypt(3) hash'),
    ({'users': [{'name': 'bad name', 'password': HASH}]}, 'the name must be'),
    ({'users': [{'name': 'a', 'password': HASH}, {'name': 'a', 'password': HASH}]}, 'listed twice'),
    ({'users': [{'name': 'a', 'password': HASH, 'role': 'admin'}]}, 'no other keys'),
    ({'allow': ['10.0.0.0/33']}, 'is not a network'),
    ({'allow': ['any']}, 'is not a network'),
    ({'allow': '10.0.0.0/8'}, 'must be a list'),
    ({'users': [], 'allow': []}, 'would answer anyone who reaches that address'),
])
def test_settings_that_cannot_be_are_refused_with_the_reason(values, message):
    with pytest.raises(_metrics.MetricsError) as error:
        _metrics.settings(given_settings(**values))
    assert message in str(error.value)
    # a password is never shown, whatever it is
    assert 'secret' not in str(error.value) and HASH not in str(error.value)


def test_on_loopback_no_auth_is_needed():
    assert _metrics.settings({'address': '127.0.0.1', 'users': [], 'allow': []})['port'] == _metrics.DEFAULT_PORT


def test_the_role_default_port_is_the_modules():
    import yaml
    from pathlib import Path
    defaults = yaml.safe_load((Path(__file__).resolve().parents[4] / 'roles' / 'haproxy_sync' / 'defaults'
                               / 'main.yml').read_text())
    assert defaults['haproxy_sync_metrics_port'] == _metrics.DEFAULT_PORT
    assert defaults['haproxy_sync_metrics_address'] == ''


def test_the_section_is_valid_haproxy_configuration(tmp_path):
    checked = _metrics.settings(given_settings(address='127.0.0.61', allow=['127.0.0.0/8', '::1']))
    section = _metrics.render(checked)
    assert section.splitlines() == [
        _metrics.HEADER,
        'userlist portico_metrics_users',
        '    user prometheus password ' + HASH,
        '',
        'frontend portico_metrics',
        '    mode http',
        '    bind 127.0.0.61:8404',
        '    option dontlog-normal',
        '    tcp-request connection reject unless { src 127.0.0.0/8 ::1 }',
        '    http-request auth realm portico-metrics unless { http_auth(portico_metrics_users) }',
        '    http-request use-service prometheus-exporter if { path /metrics }',
        '    http-request deny deny_status 404 unless { path_beg /stats }',
        '    stats enable',
        '    stats uri /stats',
        '    stats refresh 30s',
    ]
    path = tmp_path / 'haproxy.cfg'
    path.write_text(minimal_config(tmp_path / 'admin.sock') + '\n' + section)
    done = check_config(path)
    assert done.returncode == 0, done.stdout + done.stderr
    # without users or allow-list (loopback), and on IPv6
    for values in ({'address': '127.0.0.61', 'users': [], 'allow': []}, {'address': '::1', 'users': []}):
        path.write_text(minimal_config(tmp_path / 'admin.sock') + '\n' + _metrics.render(
            _metrics.settings(given_settings(**values))))
        done = check_config(path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_settings_not_checked_are_not_rendered():
    with pytest.raises(_metrics.MetricsError):
        _metrics.render({'address': '127.0.0.1 ssl crt /etc/x', 'port': 8404, 'users': [], 'allow': []})


hostile = st.text(st.sampled_from(list(' \t\n\r#"\'\\${}%;:/.,[]') + ['a', '1', 'x', '\x00', '\u2028']), max_size=30)


@given(st.fixed_dictionaries({'address': st.one_of(hostile, st.just('127.0.0.1')),
                              'port': st.one_of(st.integers(-5, 70000), hostile),
                              'users': st.lists(st.fixed_dictionaries({'name': hostile, 'password': hostile}), max_size=2),
                              'allow': st.lists(hostile, max_size=3)}))
def test_no_hostile_value_reaches_the_file(values):
    try:
        checked = _metrics.settings(values)
    except _metrics.MetricsError:
        return
    if checked is None:
        return
    for line in _metrics.render(checked).splitlines():
        assert '\n' not in line and '\r' not in line and '#' not in line[1:] and '"' not in line
        assert all(' ' <= c <= '~' for c in line)


def test_password_hashes_are_hidden_in_a_diff():
    text = _metrics.render(_metrics.settings(given_settings()))
    assert HASH in text
    hidden = _metrics.redact(text)
    assert HASH not in hidden and '    user prometheus password <hidden>' in hidden


def web_service(port):
    return {'namespace': 'shop', 'name': 'web', 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': port, 'node_port': 30080}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None, 'annotations': {}}


def frontend_model(port=443, address=None):
    node = {'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '192.0.2.1']], 'labels': {}, 'taints': [],
            'unschedulable': False, 'deleting': False}
    built = _model.build_model([node], [web_service(port)], {}, {'kind': 'snapshot', 'snapshot': 'c.json'})
    if address:
        built['frontends'][0]['address'] = address
    return built


def test_never_on_a_service_address_or_port():
    checked = _metrics.settings(given_settings())
    assert _metrics.host_problem(checked, frontend_model(), '*', []) is None
    assert 'is the port of frontend shop.web.8404' in _metrics.host_problem(checked, frontend_model(8404), '*', [])
    assert 'the base template binds port 8404 itself' in _metrics.host_problem(checked, frontend_model(), '*', [8404])
    assert 'is haproxy_sync_bind_address' in _metrics.host_problem(checked, frontend_model(), '10.0.0.11', [])
    assert 'LoadBalancer service shop/web' in _metrics.host_problem(checked, frontend_model(address='10.0.0.11'),
                                                                    '*', [])
    assert 'a floating address (haproxy_sync_vips)' in _metrics.host_problem(checked, frontend_model(), '*', [],
                                                                             ['192.0.2.100', '10.0.0.11/24'])
    assert _metrics.host_problem(checked, frontend_model(), '*', [], ['192.0.2.100']) is None
    pools = _addresses.address_pools([{'name': 'public', 'addresses': ['10.0.0.0/28']}])
    assert 'in the address pool public' in _metrics.address_problem(checked, [], pools)
    with pytest.raises(_metrics.MetricsError, match='lb1: haproxy_sync_metrics_address 10.0.0.11 is a floating'):
        _metrics.load_balancer_ports({'lb1': {'haproxy_sync_metrics_address': '10.0.0.11',
                                              'haproxy_sync_metrics_allow': ['10.0.0.0/8'],
                                              'haproxy_sync_vips': ['10.0.0.11']}}, [])


def test_the_ports_the_collect_step_reserves_and_the_model_keeps():
    pools = _addresses.address_pools([{'name': 'public', 'addresses': ['192.0.2.16/28']}])
    ports = _metrics.load_balancer_ports({
        'lb1': {'haproxy_sync_metrics_address': '10.0.0.11', 'haproxy_sync_metrics_allow': ['10.0.9.0/24']},
        'lb2': {'haproxy_sync_metrics_address': '127.0.0.1', 'haproxy_sync_metrics_port': 9101},
        'lb3': {}}, pools)
    assert ports == [8404, 9101]
    with pytest.raises(_metrics.MetricsError) as error:
        _metrics.load_balancer_ports({'lb1': {'haproxy_sync_metrics_address': '192.0.2.17',
                                              'haproxy_sync_metrics_allow': ['10.0.9.0/24']},
                                      'lb2': {'haproxy_sync_metrics_address': '10.0.0.5',
                                              'haproxy_sync_bind_address': '10.0.0.5',
                                              'haproxy_sync_metrics_users': [{'name': 'p', 'password': 'x'}]}}, pools)
    assert 'lb1: haproxy_sync_metrics_address 192.0.2.17 is in the address pool public' in str(error.value)
    assert 'lb2: haproxy_sync_metrics_users[0] (p): the password must be a crypt(3) hash' in str(error.value)
    # a service that asks for a metrics port is left out, saying why; with allocate it moves
    source = {'kind': 'snapshot', 'snapshot': 'c.json'}
    built = _model.build_model([], [web_service(8404)], {'metrics_ports': ports}, source)
    assert built['excluded_services'] == [{'service': 'shop/web', 'port': '8404/TCP', 'reason': (
        'frontend port 8404 is the metrics port of the load balancers (haproxy_sync_metrics_port)')}]
    moved = _model.build_model([], [web_service(8404)], {'metrics_ports': ports, 'port_conflict': 'allocate'}, source)
    assert moved['frontends'][0]['port'] not in ports


def test_the_whole_file_with_the_section_is_read_back_as_the_generated_part_alone(tmp_path):
    # the section sits before the generated part: the renderer's read-back and the runtime plan see only theirs
    built = frontend_model()
    checked = _metrics.settings(given_settings(address='127.0.0.61'))
    text = _config.compose(minimal_config(tmp_path / 'admin.sock') + '\n' + _metrics.render(checked),
                           _haproxy.render(built, '127.0.0.62'))
    assert _config.generated_part(text.split('\n'))[0] == ['shop.web.443']
    path = tmp_path / 'haproxy.cfg'
    path.write_text(text)
    done = check_config(path)
    assert done.returncode == 0, done.stdout + done.stderr
