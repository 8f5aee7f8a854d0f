"""The status view: HAProxy's "show stat" CSV parsed, each server's state, what the installed file
serves, and drift."""

import csv
import io

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _config, _haproxy, _metrics, _model, _servers
from ansible_collections.portico.k8s.plugins.module_utils import _status_view

# What HAProxy 2.6 answered to "show stat -1 4 -1" (the header cut after the columns the view reads
# and a few more), for one backend: UP, DOWN, weight 0, no check, disabled.
HEADER = ('# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,'
          'weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,'
          'rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,'
          'hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,'
          'lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,'
          'agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,')
COLUMNS = HEADER[2:].rstrip(',').split(',')


def row(backend, server, status, weight=1, check='L4OK', desc='Layer4 check passed', lastchg=12, addr='127.0.1.1:30080',
        scur=0):
    values = dict.fromkeys(COLUMNS, '')
    values.update(pxname=backend, svname=server, status=status, weight=str(weight), check_status=check,
                  check_desc=desc, lastchg=str(lastchg), addr=addr, scur=str(scur), type='2')
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerow([values[c] for c in COLUMNS] + [''])
    return out.getvalue()


STAT = HEADER + '\n' + ''.join([
    row('shop.web.80', 'w1', 'UP'),
    row('shop.web.80', 'w2', 'DOWN', check='L4CON', desc='Layer4 connection problem', lastchg=4),
    row('shop.web.80', 'w3', 'UP', weight=0),
    row('shop.api.81', 'w1', 'no check', check='', desc=''),
    row('shop.api.81', 'w2', 'MAINT', check='', desc=''),
    row('shop.api.81', 'old', 'MAINT', check='', desc='', scur=3),
    row('other', 'x', 'UP'),
]) + '\n'


def test_show_stat_is_read_by_its_header():
    rows = _status_view.read_stat(STAT)
    assert [(r['pxname'], r['svname'], r['status']) for r in rows][:3] == [
        ('shop.web.80', 'w1', 'UP'), ('shop.web.80', 'w2', 'DOWN'), ('shop.web.80', 'w3', 'UP')]
    assert rows[1]['check_desc'] == 'Layer4 connection problem' and rows[1]['lastchg'] == 4 and rows[2]['weight'] == 0
    with pytest.raises(_servers.StateError):
        _status_view.read_stat('Unknown command.\n')


@pytest.mark.parametrize('status,weight,admin,state', [
    ('UP', 1, 0, 'UP'), ('UP 1/3', 1, 0, 'UP'), ('no check', 1, 0, 'UP'), ('UP', 0, 0, 'DRAIN'),
    ('DRAIN', 1, 0, 'DRAIN'), ('NOLB', 1, 0, 'DRAIN'), ('DOWN', 1, 0, 'DOWN'), ('DOWN 1/2', 1, 0, 'DOWN'),
    ('MAINT', 1, 0, 'MAINT'), ('MAINT (via shop.web.80/w1)', 1, 0, 'MAINT'), ('MAINT(resolution)', 1, 0, 'MAINT'),
    ('UP', 1, _servers.FORCED_MAINT, 'MAINT'), ('', None, 0, 'DOWN'),
])
def test_each_status_is_one_of_four_states(status, weight, admin, state):
    assert _status_view.state_of(status, weight, admin) == state


def test_servers_per_backend_of_the_file():
    backends = {'shop.web.80': ['w1', 'w2', 'w3'], 'shop.api.81': ['w1', 'w2', 'w4']}
    found = _status_view.servers(_status_view.read_stat(STAT), backends)
    assert list(found) == ['shop.web.80', 'shop.api.81']
    assert [(e['server'], e['state']) for e in found['shop.web.80']] == [('w1', 'UP'), ('w2', 'DOWN'), ('w3', 'DRAIN')]
    assert [(e['server'], e['state'], e['leaving']) for e in found['shop.api.81']] == [
        ('w1', 'UP', False), ('w2', 'MAINT', False), ('old', 'MAINT', True), ('w4', 'MISSING', False)]
    assert _status_view.tally(found) == {'UP': 2, 'DOWN': 1, 'DRAIN': 1, 'MAINT': 1, 'MISSING': 1}
    assert _status_view.without_up(dict(found, **{'shop.x.1': [found['shop.web.80'][1]]})) == ['shop.x.1']


cells = st.text(st.characters(codec='utf-8', exclude_characters='\r\n\x00'), max_size=20)


@given(st.lists(st.tuples(cells.filter(bool), cells.filter(lambda s: s not in ('', 'FRONTEND', 'BACKEND')), cells,
                          st.integers(0, 256), cells, st.integers(0, 10 ** 6)), max_size=8))
def test_any_csv_haproxy_writes_reads_back(entries):
    text = HEADER + '\n' + ''.join(row(b, s, status, weight=w, desc=d, lastchg=c) for b, s, status, w, d, c in entries)
    rows = _status_view.read_stat(text)
    assert [(r['pxname'], r['svname'], r['status'], r['weight'], r['check_desc'], r['lastchg']) for r in rows] == list(
        entries)
    for entry in rows:
        assert _status_view.state_of(entry['status'], entry['weight']) in _status_view.STATES


@given(st.text(max_size=500))
def test_any_answer_is_read_or_refused(text):
    try:
        rows = _status_view.read_stat(text)
    except _servers.StateError:
        return
    assert isinstance(rows, list)


def node(name, address):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', address]], 'labels': {}, 'taints': [],
            'unschedulable': False, 'deleting': False}


def test_what_the_installed_file_serves():
    service = {'namespace': 'shop', 'name': 'web', 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
               'ports': [{'name': 'web', 'protocol': 'TCP', 'port': 80, 'node_port': 30080}],
               'external_traffic_policy': 'Cluster', 'health_check_node_port': None, 'annotations': {}}
    built = _model.build_model([node('w1', '192.0.2.1'), node('w2', '192.0.2.2')], [service], {},
                               {'kind': 'snapshot', 'snapshot': 'c.json'})
    metrics = _metrics.render(_metrics.settings({'address': '127.0.0.1', 'port': 8404}))
    text = _config.compose('global\n    stats socket /run/haproxy/admin.sock\n\n' + metrics,
                           _haproxy.render(built, '10.0.0.1'))
    frontends, backends, binds = _status_view.generated(text)
    assert frontends == [{'name': 'shop.web.80', 'binds': ['10.0.0.1:80']}]
    assert backends == {'shop.web.80': ['w1', 'w2']}
    assert binds == ['127.0.0.1:8404']
    assert _status_view.generated('') == ([], {}, [])


def test_drift():
    recorded = {'generation': 'aaa', 'counts': {'frontends': 3, 'backends': 3, 'eligible_nodes': 2}}
    assert _status_view.drift(recorded, {'generation': 'aaa'})['state'] == 'none'
    changed = _status_view.drift(recorded, {'generation': 'bbb', 'summary': {'frontends': 4, 'backends': 4,
                                                                             'nodes': 2}})
    assert changed['state'] == 'changed' and changed['current_generation'] == 'bbb'
    assert changed['message'] == ('the cluster changed since this was installed: it gives generation bbb now, this '
                                  'load balancer serves aaa (backends 3 -> 4, frontends 3 -> 4); the next sync '
                                  'changes it')
    assert _status_view.drift(recorded, {'error': '401 Unauthorized'}) == {
        'state': 'unknown', 'message': 'the cluster could not be read now (401 Unauthorized)'}
    assert _status_view.drift({}, {'generation': 'bbb'})['state'] == 'unknown'
    assert _status_view.drift(recorded, None)['state'] == 'unknown'


def test_the_view_puts_the_backends_with_trouble_first():
    backends = {'shop.web.80': ['w1', 'w2', 'w3'], 'shop.api.81': ['w1', 'w2', 'w4']}
    found = _status_view.servers(_status_view.read_stat(STAT), backends)
    state = {'serves': {'generation': 'aaa', 'installed_at': 1000.0, 'counts': {'eligible_nodes': 3},
                        'source': {'kind': 'api', 'server': 'https://k8s:6443', 'resource_version': '42',
                                   'read_at': 990.0}}}
    view = _status_view.lines('lb1', '/etc/haproxy/haproxy.cfg', state,
                              [{'name': 'shop.web.80', 'binds': ['*:80']}], found, ['127.0.0.1:8404'],
                              _status_view.drift(state['serves'], {'generation': 'aaa'}), now=1060.0)
    assert view == [
        'lb1: /etc/haproxy/haproxy.cfg serves 1 frontend, 2 backends, 6 servers (model: 3 eligible nodes, 0 '
        'draining); installed 1970-01-01 00:16:40 UTC (1 minute ago)',
        view[1],
        'drift: none: the cluster gives the same model now (generation aaa)',
        'servers: 2 UP, 1 DOWN, 1 DRAIN, 1 MAINT, 1 MISSING',
        'metrics: http://127.0.0.1:8404/metrics',
        'shop.web.80 on *:80: w1 UP, w2 DOWN (L4CON Layer4 connection problem, 4s), w3 DRAIN (L4OK Layer4 check '
        'passed, 12s)',
        'shop.api.81: w1 UP, w2 MAINT (12s), old leaving (MAINT) (12s), w4 MISSING',
    ]
    assert view[1].startswith('model: generation aaa, from the Kubernetes API https://k8s:6443 at resourceVersion 42, '
                              'read 1970-01-01 00:16:30 UTC (')
    unknown = _status_view.lines('lb1', '/x', {}, [], {'b': []}, [], {'message': 'unknown'}, 'no socket')
    assert 'servers: unknown, the stats socket did not answer (no socket)' in unknown
