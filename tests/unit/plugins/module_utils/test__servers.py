"""The runtime-API plan: which changes a running HAProxy takes without a reload, and reading its state."""

import copy

from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _config, _haproxy, _model, _servers

NAMES = ['n%d' % number for number in range(8)]
BASE = 'global\n    stats socket /run/haproxy/admin.sock level admin\n\ndefaults\n    mode tcp\n'
# what HAProxy 2.6 answered to "show servers state" (format 1), trimmed to two backends
STATE = (
    '1\n'
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight '
    'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state '
    'bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr '
    'srv_agent_addr srv_agent_port\n'
    '3 b 2 w2 127.0.2.2 0 0 0 0 131 8 2 0 6 0 0 0 - 30001 - 0 0 - - 0\n'
    '3 b 3 w3 - 0 32 1 1 131 1 0 0 14 0 0 0 node-x.example 30001 - 0 0 - - 0\n'
    '3 b 777 w4 127.0.2.4 0 0 1 1 129 8 2 0 6 0 0 1 - 30001 - 0 30002 - - 30002\n'
    '4 c 4 w9 127.0.2.9 0 1 1 1 0 1 0 0 2 0 0 0 - 1 - 0 0 - - 0\n'
    '\n')


def node(name):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', '192.0.2.%d' % (10 + NAMES.index(name))]],
            'labels': {}, 'taints': [], 'unschedulable': False, 'deleting': False}


def service(index, balance, policy):
    return {'namespace': 'shop', 'name': 's%d' % index, 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': 8000 + index, 'node_port': 30000 + index}],
            'external_traffic_policy': policy, 'health_check_node_port': 32000 + index if policy == 'Local' else None,
            'annotations': {'balance': balance}}


def slices(index, names):
    return {'namespace': 'shop', 'service': 's%d' % index, 'ready_nodes': list(names)}


def text(nodes, draining, services, local_nodes):
    """A whole haproxy.cfg of these eligible and draining nodes and services."""
    state = {'nodes': [{'name': n, 'address': '192.0.2.%d' % (10 + NAMES.index(n))} for n in draining]}
    model = _model.build_model([node(n) for n in nodes], [service(i, b, p) for i, (b, p) in enumerate(services)],
                               {'drain_state': state, 'drain_seconds': 60, 'now': 1},
                               {'kind': 'snapshot', 'snapshot': 'c.json'},
                               endpoint_slices=[slices(i, local_nodes) for i, (b, p) in enumerate(services) if p == 'Local'])
    return _config.compose(BASE, _haproxy.render(model, '192.0.2.1'))


def apply(current, changes):
    """What the changes make of the current file's backends, as HAProxy would hold them."""
    backends = copy.deepcopy(_servers.read_backends(_servers.split(current)[1])[1])
    for change in changes:
        servers = backends[change['backend']]['servers']
        if change['action'] == 'remove':
            del servers[change['server']]
        elif change['action'] == 'weight':
            servers[change['server']]['weight'] = change['weight']
        else:
            servers[change['server']] = dict((k, change[k]) for k in ('address', 'port', 'options', 'weight'))
    return dict((name, dict((s, (v['address'], v['port'], v['options'], v['weight'])) for s, v in b['servers'].items()))
                for name, b in backends.items())


def held(whole):
    return dict((name, dict((s, (v['address'], v['port'], v['options'], v['weight'])) for s, v in b['servers'].items()))
                for name, b in _servers.read_backends(_servers.split(whole)[1])[1].items())


sets = st.lists(st.sampled_from(NAMES), min_size=1, unique=True)
services = st.lists(st.tuples(st.sampled_from(['roundrobin', 'leastconn', 'source']),
                              st.sampled_from(['Cluster', 'Local'])), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(sets, sets, sets, st.lists(st.sampled_from(NAMES), unique=True), services)
def test_node_changes_are_planned_and_the_plan_makes_the_new_file(before, after, local, draining, chosen):
    current = text(before, [], chosen, local)
    candidate = text(after, [n for n in draining if n not in after], chosen, [n for n in local if n in after])
    changes, why = _servers.plan(current, candidate)
    assert why is None, why
    assert apply(current, changes) == held(candidate)
    # every command is one plain line for the runtime API
    for change in changes:
        for command in _servers.commands(change):
            assert '\n' not in command and ';' not in command and command.isascii()


@settings(max_examples=60, deadline=None)
@given(sets, services, st.sampled_from(['port', 'balance', 'service', 'base', 'policy']))
def test_anything_but_servers_needs_a_reload(nodes, chosen, what):
    current = text(nodes, [], chosen, nodes)
    changed = list(chosen)
    if what == 'port':
        candidate = text(nodes, [], chosen, nodes).replace(':8000', ':8100')
    elif what == 'balance':
        changed[0] = ('leastconn' if chosen[0][0] != 'leastconn' else 'first', chosen[0][1])
        candidate = text(nodes, [], changed, nodes)
    elif what == 'service':
        candidate = text(nodes, [], chosen + [('roundrobin', 'Cluster')] * (4 - len(chosen)), nodes)
    elif what == 'base':
        candidate = current.replace('mode tcp\n', 'mode tcp\n    retries 2\n', 1)
    else:
        changed[0] = (chosen[0][0], 'Cluster' if chosen[0][1] == 'Local' else 'Local')
        candidate = text(nodes, [], changed, nodes)
    changes, why = _servers.plan(current, candidate)
    assert changes is None and why


def test_the_reasons_name_what_needs_the_reload():
    current = text(['n0'], [], [('roundrobin', 'Cluster')], [])
    assert _servers.plan(BASE, current) == (None, 'the current file has no generated part')
    assert _servers.plan(current, current.replace('mode tcp\n', 'mode tcp\n    retries 2\n', 1)) == (
        None, 'the base configuration changed')
    assert _servers.plan(current, current.replace('roundrobin', 'leastconn')) == (
        None, 'frontends, backends or their settings changed (in backend shop.s0.8000)')
    assert _servers.plan(current, text(['n0'], [], [('roundrobin', 'Cluster')] * 2, [])) == (
        None, 'frontends, backends or their settings changed (frontend shop.s1.8001 is new)')
    assert _servers.plan(text(['n0'], [], [('roundrobin', 'Cluster')] * 2, []), current) == (
        None, 'frontends, backends or their settings changed (frontend shop.s1.8001 is gone)')
    moved = current.replace('192.0.2.10:30000', '192.0.2.99:30000')
    assert _servers.plan(current, moved) == (None, 'server n0 of backend shop.s0.8000 changed its address or settings')
    named = current + '    server n9 node-9.example:30000 check init-addr last,libc,none\n'
    assert _servers.plan(current, named) == (
        None, 'node n9 has the DNS name node-9.example, which HAProxy 2.6 cannot add at runtime')
    hashed = text(['n0'], [], [('source', 'Cluster')], [])
    unhashed = hashed.replace('    hash-type consistent\n', '')
    assert _servers.plan(unhashed, unhashed.replace('check id', 'check weight 0 id')) == (
        None, 'backend shop.s0.8000 balances by source, which cannot take servers at runtime')
    # "first" picks the lowest id: a server added at runtime would not get the id a reload gives it
    first = text(['n0'], [], [('first', 'Cluster')], [])
    assert _servers.plan(first, text(['n0', 'n1'], [], [('first', 'Cluster')], [])) == (
        None, 'backend shop.s0.8000 balances by first, which cannot take servers at runtime')
    # comments only: nothing to apply
    assert _servers.plan(current, current.replace('excluded service ports: 0', 'excluded service ports: 3')) == ([], None)


def test_commands_add_a_server_ready_with_its_checks_and_remove_one_through_maintenance():
    add = dict(action='add', backend='shop.web.80', server='n1', address='[2001:db8::1]', port=30080,
               options=' check inter 2s send-proxy-v2 id 17', weight=0)
    assert _servers.commands(add) == ['add server shop.web.80/n1 [2001:db8::1]:30080 check inter 2s send-proxy-v2 id 17 '
                                      'weight 0', 'enable health shop.web.80/n1', 'set server shop.web.80/n1 state ready']
    assert _servers.commands(dict(action='remove', backend='b', server='n1')) == [
        'set server b/n1 state maint', 'del server b/n1']
    assert _servers.commands(dict(action='weight', backend='b', server='n1', weight=1)) == ['set server b/n1 weight 1']


def test_answers_that_mean_done_and_refusals():
    assert _servers.refusal('add server b/n1 192.0.2.1:1 check', 'New server registered.\n\n') is None
    assert _servers.refusal('del server b/n1', 'Server deleted.\n') is None
    assert _servers.refusal('set server b/n1 weight 0', '\n') is None
    assert _servers.refusal('set server b/n1 weight 0', 'No such server.\n\n') == 'No such server.'
    assert _servers.refusal('add server b/n1 192.0.2.1:1 check', 'Permission denied\n') == 'Permission denied'
    assert _servers.STILL_CONNECTED in _servers.refusal(
        'del server b/n1', 'Server still has connections attached to it, cannot remove it.\n')


def test_the_running_state_is_read_from_haproxys_own_format():
    state = _servers.read_state(STATE)
    assert state['b']['w2'] == {'address': '127.0.2.2', 'fqdn': '-', 'port': 30001, 'admin': 0, 'weight': 0}
    assert state['b']['w3']['fqdn'] == 'node-x.example' and state['c']['w9']['admin'] == 1
    for bad in ('2\n', 'Unknown command\n', '1\n3 b 2 w2\n', '1\n' + STATE.split('\n')[2].replace(' 30001 ', ' x ') + '\n'):
        try:
            _servers.read_state(bad)
        except _servers.StateError:
            continue
        raise AssertionError('accepted %r' % bad)


def test_disagreements_name_each_server_that_differs_and_allow_servers_still_leaving():
    file_backends = {
        'b': {'servers': {'w2': dict(address='127.0.2.2', port=30001, options=' check', weight=0),
                          'w3': dict(address='node-x.example', port=30001, options=' check', weight=1),
                          'w4': dict(address='127.0.2.4', port=30001, options=' check', weight=1)}},
        'c': {'servers': {}},
    }
    running = _servers.read_state(STATE)
    # w9 in maintenance and not in the file: removed, still finishing its connections
    assert _servers.disagreements(running, file_backends) == []
    assert _servers.leaving(running, file_backends) == [('c', 'w9')]
    running['b']['w4'].update(weight=1, port=30002)
    running['b']['w2']['admin'] = 1
    running['c']['w9']['admin'] = 0
    del running['b']['w3']
    assert _servers.disagreements(running, dict(file_backends, d={'servers': {}})) == [
        'server b/w2 is in maintenance or drain', 'server b/w3 is missing', 'server b/w4 runs on port 30002, not 30001',
        'server c/w9 runs but is not in the file', 'backend d does not run']


def test_split_finds_the_generated_part_after_the_base():
    whole = text(['n0'], [], [('roundrobin', 'Cluster')], [])
    base, generated = _servers.split(whole)
    assert base + generated == whole and generated.startswith('# ---') and _haproxy.MARKER in generated
    assert _servers.split(BASE) == (BASE, '')


def test_server_ids_are_stable_and_unique():
    ids = _haproxy.server_ids(NAMES)
    assert len(set(ids.values())) == len(NAMES) and all(1 <= v < 2 ** 31 for v in ids.values())
    assert _haproxy.server_ids(NAMES[:3]) == dict((n, ids[n]) for n in NAMES[:3])


STAT = ('# pxname,svname,qcur,qmax,scur,smax,slim,stot\n'
        'web,FRONTEND,,,3,3,,3\n'
        'b,w1,0,0,2,2,,2\n'
        'b,w2,0,0,0,1,,1\n'
        'c,w1,0,0,1,1,,1\n'
        'mine,w2,0,0,5,5,,5\n'
        'b,BACKEND,0,0,2,2,,3\n\n')


def test_sessions_count_only_the_generated_backends_and_idle_names_the_unused_draining_nodes():
    counts = _servers.sessions(STAT, ['b', 'c'])
    assert counts == {'w1': 3, 'w2': 0}
    # w2's sessions in the operator's own backend "mine" do not keep it draining; n9 is not running at all
    assert _servers.idle(['w1', 'w2', 'n9'], counts) == ['w2', 'n9']
    for bad in ('Unknown command.\n', '# pxname,svname,scur\nb,w1,x\n'):
        try:
            _servers.sessions(bad, ['b'])
        except _servers.StateError:
            continue
        raise AssertionError('accepted %r' % bad)
