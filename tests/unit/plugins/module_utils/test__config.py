"""The host step's decisions: what the current file serves, the safety valve, which certificates
go, the stats socket and the controller's input checks."""

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _config, _haproxy, _model

NODE = {'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']], 'labels': {}, 'taints': [],
        'unschedulable': False, 'deleting': False}


def service(name, port, **annotations):
    return {'namespace': 'shop', 'name': name, 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': port, 'node_port': 30000 + port}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None,
            'annotations': dict((k.replace('_', '-'), v) for k, v in annotations.items())}


def model(*services):
    return _model.build_model([NODE], list(services), {}, {'kind': 'snapshot', 'snapshot': 'c.json'})


BASE = 'global\n    stats socket /run/haproxy/admin.sock mode 660 level admin\n\nbackend own\n    mode tcp\n'


def test_the_file_is_the_base_then_a_blank_line_then_the_generated_part():
    assert _config.compose('\n\n' + BASE + '\n\n', 'X\n') == BASE.strip() + '\n\nX\n'


def test_only_the_generated_part_counts_and_its_certificates_under_the_directory():
    text = _config.compose(BASE, _haproxy.render(model(service('web', 80), service('api', 81)))).split('\n')
    backends, certificates, foreign = _config.generated_part(text + ['    bind *:443 ssl crt /c/a_b.pem crt /x/y.pem'], '/c/')
    assert backends == ['shop.api.81', 'shop.web.80'] and 'own' not in backends
    assert certificates == ['a_b.pem'] and foreign == []


def test_lines_injected_into_an_older_generated_part_are_named():
    lines = [_haproxy.MARKER, 'backend a', 'program x', '    command touch /tmp/p', 'global']
    assert _config.generated_part(lines)[2] == [(3, 'program x'), (5, 'global')]


def test_a_file_without_the_marker_has_no_generated_part():
    assert _config.generated_part(['backend a', 'backend b']) == ([], [], [])


def test_a_missing_file_serves_nothing(tmp_path):
    assert _config.read_generated(str(tmp_path / 'none.cfg')) == (False, [], [], [])


@given(st.lists(st.sampled_from('abcdefghij'), unique=True), st.lists(st.sampled_from('abcdefghij'), unique=True),
       st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
def test_the_safety_valve_trips_exactly_when_too_many_backends_would_go(current, wanted, ratio):
    removed = [name for name in current if name not in wanted]
    problem = _config.removal_problem('/etc/haproxy/haproxy.cfg', current, wanted, ratio)
    assert (problem is not None) == (bool(current) and len(removed) > ratio * len(current))
    if problem:
        assert 'Refusing to remove %d of the %d backends in /etc/haproxy/haproxy.cfg' % (len(removed), len(current)) in problem
        assert all(name in problem for name in removed) and 'haproxy_sync_force=true' in problem
    assert _config.removal_problem('/f', current, wanted, ratio, force=True) is None


def test_the_safety_valve_names_twenty_backends_then_counts():
    problem = _config.removal_problem('/f', ['b%02d' % i for i in range(30)], [], 0.5)
    assert 'b19, ...' not in problem and 'b19 ...' in problem and 'b20' not in problem and '(more than 50%' in problem


def test_certificate_files_the_new_file_does_not_bind_go(tmp_path):
    for name in ('shop_web.0123456789ab.pem', 'shop_old.0123456789ab.pem', 'operator.pem'):
        (tmp_path / name).write_text('x')
    stored = _config.stored_certificates(str(tmp_path))
    assert stored == ['shop_old.0123456789ab.pem', 'shop_web.0123456789ab.pem']
    assert _config.unused_certificates(stored, ['shop_web.0123456789ab.pem']) == ['shop_old.0123456789ab.pem']
    assert _config.stored_certificates(str(tmp_path / 'none')) == []


@pytest.mark.parametrize('base,expected', [
    (BASE, '/run/haproxy/admin.sock'),
    ('global\n  stats socket unix@/run/a.sock level admin\n', '/run/a.sock'),
    ('global\n  stats socket ipv4@127.0.0.1:9999\n  stats socket /run/b.sock\n', '/run/b.sock'),
    ('global\n  # stats socket /run/commented.sock\n', None),
    ('global\n  stats timeout 30s\n', None),
])
def test_the_stats_socket_is_the_first_unix_one_of_the_base(base, expected):
    assert _config.stats_socket(base) == expected


def test_ports_the_base_binds_are_taken():
    base = BASE + 'frontend stats\n    bind *:8404\n    bind [::]:81\n'
    assert _config.base_ports(base) == [81, 8404]
    assert _config.taken_ports(base, model(service('web', 80), service('api', 81))) == [81]


def test_the_port_probed_without_a_stats_socket_is_on_the_roles_address_if_it_can_be():
    m = model(service('web', 80, bind_address='192.0.2.7'), service('api', 81))
    assert _config.probe_address(m, '*') == ('127.0.0.1', 81)
    assert _config.probe_address(m, '[2001:db8::1]') == ('2001:db8::1', 81)
    only = model(service('web', 80, bind_address='192.0.2.7'))
    assert _config.probe_address(only, '*') == ('192.0.2.7', 80)
    assert _config.probe_address(model(), '*') is None


def test_the_controller_refuses_inputs_that_cannot_make_a_configuration():
    good = model(service('web', 80))
    assert _config.input_problem(good, BASE, 'haproxy -c -f %s', '/etc/c', {}) is None
    assert 'must be the \'model\' result' in _config.input_problem({'nodes': []}, BASE, 'haproxy -c -f %s', '/c', {})
    assert 'must contain %s' in _config.input_problem(good, BASE, 'haproxy -c', '/c', {})
    own = dict(good, frontends=[dict(good['frontends'][0], address='192.0.2.7', bind_address='192.0.2.7')])
    assert _config.input_problem(own, BASE, 'haproxy -c -f %s', '/c', {}, '*') is None
    assert 'haproxy_sync_bind_address 192.0.2.7 is the own address of a LoadBalancer service' in \
        _config.input_problem(own, BASE, 'haproxy -c -f %s', '/c', {}, '192.0.2.7')
    assert 'binds port(s) 80' in _config.input_problem(good, BASE + 'listen x\n  bind :80\n', 'haproxy -c -f %s', '/c', {})
    tls = dict(good, certificates=[{'file': 'shop_web.0123456789ab.pem', 'secret': 'shop/web-tls'}])
    assert 'shop/web-tls came without' in _config.input_problem(tls, BASE, 'haproxy -c -f %s', '/c', {})
    assert 'absolute path' in _config.input_problem(tls, BASE, 'haproxy -c -f %s', 'c d', {})
    assert _config.input_problem(tls, BASE, 'haproxy -c -f %s', '/c', {'shop_web.0123456789ab.pem': 'x'}) is None


def test_a_slimmed_model_renders_the_same_bytes():
    full = model(service('web', 80), service('api', 81))
    full['excluded_nodes'] = [{'name': 'n%d' % i, 'reason': 'NotReady'} for i in range(7)]
    full['excluded_services'] = [{'service': 'shop/x', 'port': None, 'reason': 'ClusterIP'}]
    small = _config.slim(full)
    assert 'excluded_nodes' not in small and small['excluded_nodes_count'] == 7
    assert _haproxy.render(small) == _haproxy.render(full) and _config.slim(small) == small
    assert 'excluded nodes: 7, excluded service ports: 1' in _haproxy.render(small)


def nodes(count):
    return [dict(NODE, name='w%02d' % i, addresses=[['InternalIP', '10.0.0.%d' % (i + 1)]]) for i in range(count)]


def lines(the_model):
    return _config.compose(BASE, _haproxy.render(the_model)).split('\n')


def test_the_valve_counts_the_nodes_that_serve_and_a_draining_node_serves_no_more():
    twelve = _model.build_model(nodes(12), [service('web', 80), service('api', 81)], {}, {'kind': 'snapshot'})
    one = _model.build_model(nodes(12)[:1], [service('web', 80), service('api', 81)], {}, {'kind': 'snapshot'})
    before, after = _config.serving_nodes(lines(twelve)), _config.serving_nodes(lines(one))
    assert len(before) == 12 and after == {'w00'}
    # same backends: the old valve let 11 of 12 nodes go
    problem = _config.removal_problem('/f', ['shop.api.81', 'shop.web.80'], ['shop.api.81', 'shop.web.80'], 0.5,
                                      serving=(before, after))
    assert problem.startswith('Refusing to go from 12 nodes that serve in /f to 1 (more than 50% fewer')
    # nodes that others replace take nothing away
    assert _config.removal_problem('/f', [], [], 0.5, serving=({'w3'}, {'w0', 'w1', 'w2'})) is None
    assert 'w01, w02' in problem and 'haproxy_sync_force=true' in problem
    assert _config.removal_problem('/f', [], [], 0.5, serving=(before, after), force=True) is None
    assert _config.removal_problem('/f', [], [], 0.5, serving=(before, set(sorted(before)[:6]))) is None
    draining = dict(one, draining_nodes=[{'name': n['name'], 'address': n['addresses'][0][1]} for n in nodes(12)[1:]])
    text = lines(draining)
    assert any(' weight 0' in line for line in text) and _config.serving_nodes(text) == {'w00'}


def test_removals_over_several_runs_count_together_within_the_window():
    peaks, now = [], 10000.0
    for count, refused in ((12, False), (7, False), (4, True)):
        peak = _config.peak_of(peaks, now, 3600)
        problem = _config.removal_problem('/f', ['b%d' % i for i in range(12 if not peaks else peaks[-1][1])],
                                          ['b%d' % i for i in range(count)], 0.5, serving=(set(), set()),
                                          peak=peak, window=3600)
        assert (problem is not None) == refused, problem
        if not refused:
            peaks = _config.add_peak(peaks, now, count, 0, 3600)
        now += 60
    assert problem.startswith('Refusing to leave 4 backends in /f: within the last 3600 seconds '
                              '(haproxy_sync_removal_window) it served 12')
    # an hour later only what was served since counts: at most the ratio per window
    assert _config.peak_of(peaks, now + 3600, 3600) is None
    assert _config.peak_of(peaks, now, 0) is None
    # entries another one covers, outside the window or malformed go; a forced run starts afresh
    assert _config.add_peak([[1.0, 5, 5], [now, 12, 3], 'x', [now, 'x', 1]], now + 1, 8, 4, 3600) == \
        [[now, 12, 3], [now + 1, 8, 4]]
    assert _config.add_peak([[now, 12, 3]], now + 1, 8, 4, 3600, reset=True) == [[now + 1, 8, 4]]
    assert _config.peak_of([[float('nan'), 5, 5], [now, 1e308, 1], [now, 2, True], [now, 3, 1]], now, 3600) == (3, 1, now)


def test_nodes_that_fall_over_several_runs_are_told_not_refused():
    peak = (2, 12, 0.0)
    assert _config.removal_problem('/f', ['a', 'b'], ['a', 'b'], 0.5, serving=({'w1', 'w2', 'w3'}, {'w1', 'w2'}),
                                   peak=peak, window=3600) is None
    warning = _config.shrinking('/f', {'w1', 'w2'}, peak, 0.5, 3600)
    assert warning.startswith('/f serves 2 nodes; within the last 3600 seconds (haproxy_sync_removal_window) it '
                              'served 12: more than 50% fewer')
    assert _config.shrinking('/f', set('abcdef'), peak, 0.5, 3600) is None and \
        _config.shrinking('/f', set(), None, 0.5, 3600) is None
