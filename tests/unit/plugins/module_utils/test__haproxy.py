"""The renderer's guard and read-back check: a value that fits no slot is never written.

These bypass the parsers (hand-made models, parsers replaced) so that the second line of
defence is shown to hold on its own.
"""

import copy
import re

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _annotations, _haproxy, _model, _nodes

NODE = {'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']], 'labels': {}, 'taints': [],
        'unschedulable': False, 'deleting': False}
# Characters that let a value become something else in haproxy.cfg: none may be in any slot.
DANGEROUS = re.compile(r'[\s#"\'\\$`{}]|[^\x21-\x7e]')
ATTACKS = ['fe80::1%\nprogram p\n    command touch pwned\n#', '::1:8080%x#', '%[src]', '${HOME}', '.if 1',
           'program', 'a"b', "a'b", 'a\\b', 'x\u2028y', 'x\x85y', 'x\ry', 'a b', 'a#b', 'é', 'x' * 5000, '', '{']


def service(name, port, **annotations):
    return {'namespace': 'shop', 'name': name, 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': port, 'node_port': 30000 + port}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None,
            'annotations': dict((k.replace('_', '-'), v) for k, v in annotations.items())}


def model(*services, nodes=(NODE,)):
    return _model.build_model(list(nodes), list(services), {}, {'kind': 'snapshot', 'snapshot': 'c.json'})


@settings(max_examples=500)
@given(st.sampled_from(sorted(_haproxy._PATTERNS)), st.one_of(st.text(max_size=40), st.sampled_from(ATTACKS)))
def test_a_slot_takes_no_dangerous_character(kind, value):
    try:
        text = _haproxy.slot(kind, value)
    except _haproxy.UnsafeValue as exc:
        assert kind in str(exc) and '\n' not in str(exc)
        return
    if kind == 'comment':
        assert re.fullmatch(r'[ -~]*', text)
    else:
        assert not DANGEROUS.search(text)
        assert '%' not in text or (kind == 'path' and not re.search('%(?![0-9A-Fa-f]{2})', text))


@pytest.mark.parametrize('value', [True, 0, 65536, '80', 1.5, None])
def test_a_port_slot_takes_only_a_port(value):
    with pytest.raises(_haproxy.UnsafeValue, match='is not a port from 1 to 65535'):
        _haproxy.slot('port', value)


def test_a_hand_made_model_with_a_bad_value_is_never_rendered():
    good = model(service('web', 80))
    for path, value, whose in ((('frontends', 0, 'bind_address'), '::1:1%x#\nprogram p', 'service shop/web'),
                               (('backends', 0, 'check'), {'type': 'http', 'path': '/%[src]'}, 'service shop/web'),
                               (('nodes', 0, 'address'), '[fe80::1%lo]', 'node w1'),
                               (('nodes', 0, 'name'), 'w1\n    command x', 'node'),
                               (('backends', 0, 'balance'), 'roundrobin\nprogram p', 'service shop/web')):
        bad = copy.deepcopy(good)
        bad[path[0]][path[1]][path[2]] = value
        with pytest.raises(_haproxy.UnsafeValue) as caught:
            _haproxy.render(bad)
        assert 'fit a' in str(caught.value) and (caught.value.service or caught.value.node)
    bad = copy.deepcopy(good)
    bad['backends'][0]['nodes'] = ['w2']
    with pytest.raises(_haproxy.UnsafeValue, match="names node 'w2', which is not among the eligible nodes"):
        _haproxy.render(bad)
    with pytest.raises(_haproxy.UnsafeValue, match='does not fit a bind slot'):
        _haproxy.render(good, bind_address='127.0.0.1 # x')


def test_the_read_back_check_refuses_any_line_portico_does_not_write():
    good = model(service('web', 80), service('api', 81, mode='http', hosts='a.example.com'))
    text = _haproxy.render(good)
    _haproxy.verify(text, good)
    for injected in ('program pwn', '    command touch /tmp/x', '.if 1', '  .diag "x"', 'global', 'setenv A b',
                     '    lua-load /x.lua', '    external-check command /bin/true', 'listen x',
                     '    bind 127.0.0.1:80', 'frontend extra', '    use_backend nowhere if { var(txn.host) -m str x }',
                     '    server w2 10.0.0.2:30080 check backup', '    stats enable'):
        lines = text.split('\n')
        lines.insert(len(lines) // 2 if not injected.startswith('frontend') else 6, injected)
        with pytest.raises(_haproxy.MalformedConfig):
            _haproxy.verify('\n'.join(lines), good)
    with pytest.raises(_haproxy.MalformedConfig, match='outside printable ASCII'):
        _haproxy.verify(text.replace('# Service', '# Serv\u2028ice'), good)


def test_what_a_parser_lets_through_the_guard_leaves_out_with_the_reason(monkeypatch):
    # the parsers are the first line of defence; with them broken, the renderer's guard still holds
    parsers = dict(_annotations.ANNOTATIONS)
    parsers['check-path'] = ((lambda value: value),) + parsers['check-path'][1:]
    parsers['bind-address'] = ((lambda value: value),) + parsers['bind-address'][1:]
    monkeypatch.setattr(_annotations, 'ANNOTATIONS', parsers)
    evil = service('evil', 81, check='http', check_path='/x\nprogram p\n    command touch pwned')
    hijack = service('hijack', 82, bind_address='::ffff:7f00:7:8080%x#')
    result = model(service('web', 80), evil, hijack)
    assert [f['service'] for f in result['frontends']] == ['shop/web']
    reasons = dict((e['service'], e['reason']) for e in result['excluded_services'])
    assert reasons['shop/evil'].startswith("refused by the configuration guard: check path: '/x\\nprogram p")
    assert reasons['shop/hijack'].startswith("refused by the configuration guard: bind address: '::ffff:7f00:7:8080%x#'")
    _haproxy.render(result)


def test_a_node_address_a_parser_lets_through_is_left_out_by_the_guard(monkeypatch):
    def broken(node, address_types=None, family='any'):
        return ('[::1%x]:1 check#\nprogram p' if node['name'] == 'evil' else '10.0.0.1'), None
    monkeypatch.setattr(_nodes, 'node_address', broken)
    result = model(service('web', 80), nodes=(NODE, dict(NODE, name='evil')))
    assert [n['name'] for n in result['nodes']] == ['w1']
    assert result['excluded_nodes'] == [{'name': 'evil', 'reason': "refused by the configuration guard: address: "
                                         "'[::1%x]:1 check#\\nprogram p' does not fit a address slot"}]
    assert 'evil' not in _haproxy.render(result)


def test_the_same_model_renders_the_same_text():
    one = model(service('web', 80), service('api', 81, mode='http', hosts='a.example.com,*.b.example.com'))
    assert _haproxy.render(one) == _haproxy.render(copy.deepcopy(one))


def test_the_read_back_check_compares_binds_and_servers_with_the_model():
    good = model(service('web', 80))
    text = _haproxy.render(good, bind_address='127.0.0.1')
    for old, new in (('bind 127.0.0.1:80', 'bind 127.0.0.1:81'), ('bind 127.0.0.1:80', 'bind 127.0.0.2:80'),
                     ('server w1 10.0.0.1:30080', 'server w1 10.0.0.9:30080'),
                     ('server w1 10.0.0.1:30080', 'server w1 10.0.0.1:30081'),
                     ('server w1 10.0.0.1:30080', 'server w9 10.0.0.1:30080')):
        assert old in text
        with pytest.raises(_haproxy.MalformedConfig, match='not what the model says|servers the model says'):
            _haproxy.verify(text.replace(old, new), good, '127.0.0.1')


def either(valid):
    return st.one_of(valid, valid, valid, st.sampled_from(ATTACKS), st.text(max_size=12), st.integers(-2, 70000),
                     st.none(), st.booleans())


@st.composite
def hand_made_models(draw):
    """Models no parser checked: every slot may hold anything."""
    nodes = [{'name': draw(either(st.sampled_from(['w1', 'w2.example.com']))),
              'address': draw(either(st.sampled_from(['10.0.0.1', '[fd00::1]', 'w1.example.com'])))}
             for dummy in range(draw(st.integers(1, 3)))]
    backends, frontends = [], []
    for index in range(draw(st.integers(1, 3))):
        name = draw(either(st.just('shop.web%d.80' % index)))
        backends.append({'name': name, 'service': 'shop/web', 'mode': draw(either(st.sampled_from(['tcp', 'http']))),
                         'balance': draw(either(st.sampled_from(['roundrobin', 'hdr(X-A)']))),
                         'node_port': draw(either(st.just(30080))), 'nodes': 'all',
                         'proxy_protocol': draw(either(st.sampled_from(['none', 'v1']))),
                         'timeout_server': draw(either(st.sampled_from(['5s', None]))),
                         'check': {'type': 'http', 'path': draw(either(st.sampled_from(['/', '/a%20b']))),
                                   'method': draw(either(st.just('GET'))), 'status': draw(either(st.just(200))),
                                   'interval': draw(either(st.just('2s')))}})
        frontends.append({'name': name, 'port': draw(either(st.just(8080 + index))), 'mode': 'http',
                          'backend': name, 'service': 'shop/web', 'service_port': 80, 'route_by': None,
                          'routes': [], 'redirect_port': None, 'tls': None,
                          'bind_address': draw(either(st.sampled_from([None, '10.0.0.1', 'fd00::1']))),
                          'accept_proxy': False, 'maxconn': draw(either(st.just(100))),
                          'timeout_client': draw(either(st.just('1m')))})
    return {'source': {'kind': 'snapshot', 'snapshot': draw(st.text(max_size=20))}, 'nodes': nodes,
            'frontends': frontends, 'backends': backends}


@settings(max_examples=400)
@given(hand_made_models())
def test_a_hand_made_model_renders_safely_or_not_at_all(hostile):
    try:
        text = _haproxy.render(hostile, '127.0.0.1')
    except (_haproxy.UnsafeValue, _haproxy.MalformedConfig, KeyError, TypeError):
        return
    for line in text.split('\n'):
        assert line.isascii() and (not line or line.isprintable())
        if not line.startswith('#'):
            assert not DANGEROUS.search(line.replace(' ', '')) and '%[' not in line


def test_a_server_known_by_name_may_start_unresolved():
    good = model(service('web', 80))
    for address, ending in (('10.0.0.1', ''), ('[fd00::1]', ''), ('node-1.example.com', ' init-addr last,libc,none'),
                            ('999.1.1.1', ' init-addr last,libc,none'), ('1.2.3.08', ' init-addr last,libc,none')):
        hand_made = copy.deepcopy(good)
        hand_made['nodes'][0]['address'] = address
        assert '    server w1 %s:30080 check%s\n' % (address, ending) in _haproxy.render(hand_made)


def test_a_port_shared_by_many_services_names_ten_in_its_comment_and_leaves_out_none():
    # long names, many members: the comment stays short and the oldest service keeps its port
    services = [dict(service('s%03d' % index + 'x' * 59, 80, mode='http', hosts='h%d.example.com' % index),
                     namespace='n' * 63, created='2026-01-01T00:%02d:%02dZ' % (index // 60, index % 60))
                for index in range(300)]
    result = model(*services)
    assert result['excluded_services'] == []
    frontend, = result['frontends']
    comment, = [line for line in _haproxy.render(result).split('\n') if line.startswith('# Port 80')]
    assert comment.endswith('and 290 more') or comment.endswith(', 290 more')
    assert comment.count('/') == 10 and len(comment) < 2000


def test_a_refusal_that_names_nothing_to_leave_out_ends_the_rounds(monkeypatch):
    monkeypatch.setattr(_model, 'refusals', lambda m: {'services': {'ghost/none': 'refused'}, 'nodes': {}})
    assert [f['service'] for f in model(service('web', 80))['frontends']] == ['shop/web']


def test_hashing_backends_hash_consistently_with_fixed_ids_and_slowstart_is_written_on_every_server():
    second = dict(NODE, name='w2', addresses=[['InternalIP', '10.0.0.2']])
    both = model(service('web', 80, balance='source'), service('api', 81), nodes=(NODE, second))
    ids = _haproxy.server_ids(['w1', 'w2'])
    text = _haproxy.render(both, slowstart='30s')
    assert ('backend shop.web.80\n    mode tcp\n    balance source\n    hash-type consistent\n'
            '    server w1 10.0.0.1:30080 check slowstart 30s id %d\n'
            '    server w2 10.0.0.2:30080 check slowstart 30s id %d\n' % (ids['w1'], ids['w2'])) in text
    assert ('backend shop.api.81\n    mode tcp\n    balance roundrobin\n'
            '    server w1 10.0.0.1:30081 check slowstart 30s\n') in text
    # a node's id is its own, whichever other nodes there are
    alone = _haproxy.render(model(service('web', 80, balance='source'), nodes=(second,)))
    assert '    server w2 10.0.0.2:30080 check id %d\n' % ids['w2'] in alone
    for bad in ('30 s', '30s\n', '-1', 'soon'):
        with pytest.raises(_haproxy.UnsafeValue):
            _haproxy.render(both, slowstart=bad)
    # the read-back check knows the hash-type line belongs to hashing backends only
    with pytest.raises(_haproxy.MalformedConfig, match='does not hash as the model says'):
        _haproxy.verify(text.replace('    hash-type consistent\n', ''), both)


def test_a_service_address_is_bound_transparent_unless_told_not_to_and_haproxy_accepts_it(tmp_path):
    from tests.support.haproxy import check_config, minimal_config
    lb = dict(service('web', 80), type='LoadBalancer', load_balancer_class='portico.io/haproxy', ingress=[],
              ip_families=['IPv6'])
    built = _model.build_model([NODE], [lb, service('plain', 81)],
                               {'address_pools': [{'name': 'p', 'addresses': ['2001:db8::10-2001:db8::11']}]})
    text = _haproxy.render(built)
    assert '    bind 2001:db8::10:80 transparent\n' in text and '    bind *:81\n' in text
    assert '    bind 2001:db8::10:80\n' in _haproxy.render(built, nonlocal_bind=False)
    config = tmp_path / 'haproxy.cfg'
    config.write_text(minimal_config(tmp_path / 'admin.sock') + '\n' + text)
    result = check_config(config)
    assert result.returncode == 0, result.stdout + result.stderr
