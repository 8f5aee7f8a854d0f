"""The figures of a sync: the model's generation and counts, the way each load balancer took it,
the node_exporter textfile, and the run report (a failed run keeps the last success time)."""

import copy
import re

from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _config, _model, _report


def node(name, address):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', address]], 'labels': {}, 'taints': [],
            'unschedulable': False, 'deleting': False}


def service(name, port, protocol='TCP'):
    return {'namespace': 'shop', 'name': name, 'created': '2026-01-01T00:00:00Z', 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': protocol, 'port': port, 'node_port': 30000 + port % 1000}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None, 'annotations': {}}


def model(services=(('web', 80),), nodes=(('w1', '192.0.2.1'), ('w2', '192.0.2.2')), source=None):
    return _model.build_model([node(*n) for n in nodes], [service(*s) for s in services], {},
                              source or {'kind': 'api', 'server': 'https://k8s:6443', 'resource_version': '7',
                                         'read_at': 1000.0})


def test_the_generation_follows_what_is_served_not_when_or_where_it_was_read():
    first = model()
    later = model(source={'kind': 'api', 'server': 'https://k8s:6443', 'resource_version': '99', 'read_at': 2000.0})
    assert _report.generation(first) == _report.generation(later)
    assert re.match(r'[0-9a-f]{16}\Z', _report.generation(first))
    # the host step gets the model slimmed: the same generation
    assert _report.generation(_config.slim(first)) == _report.generation(first)
    assert _report.generation(model(services=(('web', 80), ('api', 81)))) != _report.generation(first)
    assert _report.generation(model(nodes=(('w1', '192.0.2.1'),))) != _report.generation(first)
    # a UDP service is excluded: nothing served changes
    assert _report.generation(model(services=(('web', 80), ('dns', 53, 'UDP')))) == _report.generation(first)
    assert _report.generation(None) is None


def test_counts_are_the_same_from_the_whole_model_and_the_slim_one():
    built = model(services=(('web', 80), ('dns', 53, 'UDP')))
    assert _report.counts(built) == _report.counts(_config.slim(built)) == {
        'frontends': 1, 'backends': 1, 'eligible_nodes': 2, 'draining_nodes': 0, 'excluded_nodes': 0,
        'excluded_services': 1}


def test_the_way_a_host_took_the_run():
    assert _report.way({'changed': True, 'reloaded': True}) == 'reload'
    assert _report.way({'changed': True, 'applied_at_runtime': True, 'runtime_changes': 2}) == 'runtime'
    assert _report.way({'changed': True, 'applied_at_runtime': True, 'runtime_changes': 0}) == 'installed'
    assert _report.way({'changed': False}) == 'none'
    assert _report.way({'changed': False, 'outdated': True}) == 'outdated'
    assert _report.way({'failed': True, 'msg': 'x'}) == 'failed'
    assert _report.way({'unreachable': True}) == 'unreachable'
    assert _report.way(None) == 'not reached'
    assert _report.way({'skipped': True}) == 'not reached'
    # in check mode, the way it would go
    assert _report.way({'changed': True, 'reload_reason': 'a service is new'}, check_mode=True) == 'reload'
    assert _report.way({'changed': True, 'runtime_changes': 1}, check_mode=True) == 'runtime'


def outcome(ok=True, way='reload', **extra):
    given = {'load_balancer': 'lb-a', 'config': '/etc/haproxy/haproxy.cfg', 'ok': ok, 'way': way,
             'runtime_changes': 0, 'generation': 'abc', 'model_read_at': 900.0, 'installed_at': 950.0,
             'counts': {'frontends': 1, 'backends': 1, 'eligible_nodes': 2, 'draining_nodes': 0, 'excluded_nodes': 0,
                        'excluded_services': 1}}
    given.update(extra)
    return given


def test_a_failed_run_keeps_the_last_success_time_and_what_is_served():
    first = _report.next_host_record({}, outcome(), 1000.0)
    assert first['success'] and first['last_success_at'] == 1000.0 and first['reloads'] == 1
    text = _report.render_textfile(first)
    failed = _report.next_host_record(_report.read_textfile(text),
                                      outcome(ok=False, way='failed', generation=None, counts=None), 2000.0)
    assert not failed['success'] and failed['last_run_at'] == 2000.0 and failed['last_success_at'] == 1000.0
    assert failed['failures'] == 1 and failed['successes'] == 1 and failed['reloads'] == 1
    assert failed['generation'] == 'abc' and failed['counts'] == first['counts']
    lines = _report.render_textfile(failed).splitlines()
    assert 'portico_sync_success 0' in lines and 'portico_sync_last_success_timestamp_seconds 1000' in lines
    assert 'portico_sync_runs_total{result="failure"} 1' in lines


def test_reloads_and_runtime_changes_count_apart():
    record = {}
    for step, (way, changes) in enumerate((('reload', 0), ('runtime', 3), ('runtime', 1), ('none', 0),
                                           ('installed', 0))):
        record = _report.read_textfile(_report.render_textfile(
            _report.next_host_record(record, outcome(way=way, runtime_changes=changes), 1000.0 + step)))
    assert (record['reloads'], record['runtime_updates'], record['runtime_server_changes']) == (1, 2, 4)
    assert record['successes'] == 5 and not record['last_run_reloaded'] and record['last_run_runtime_changes'] == 0


def test_the_textfile_is_prometheus_text_format():
    text = _report.render_textfile(_report.next_host_record({}, outcome(load_balancer='lb "a"\\\n'), 1000.5))
    lines = text.splitlines()
    metric = re.compile(r'[a-z_]+(\{[a-z_]+="(?:[^"\\\n]|\\[\\"n])*"(,[a-z_]+="(?:[^"\\\n]|\\[\\"n])*")*\})? -?[0-9.e+]+\Z')
    for line in lines:
        assert line.startswith(('# HELP ', '# TYPE ')) or metric.match(line), line
    names = set(line.split()[2] for line in lines if line.startswith('# TYPE '))
    assert names <= set(_report.METRIC_NAMES)
    assert 'portico_sync_info{load_balancer="lb \\"a\\"\\\\\\n",config="/etc/haproxy/haproxy.cfg"} 1' in lines
    assert _report.read_textfile(text)['load_balancer'] == 'lb "a"\\\n'
    assert text.endswith('\n') and 'portico_sync_last_run_timestamp_seconds 1000.5' in lines


labels = st.text(st.characters(codec='utf-8'), max_size=30)
counts = st.integers(min_value=0, max_value=10 ** 9)
times = st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False).map(lambda t: round(t, 3)))


@given(st.fixed_dictionaries({
    'load_balancer': labels, 'config': labels, 'success': st.booleans(), 'last_run_at': times,
    'last_success_at': times, 'successes': counts, 'failures': counts, 'reloads': counts,
    'runtime_updates': counts, 'runtime_server_changes': counts, 'last_run_reloaded': st.booleans(),
    'last_run_runtime_changes': counts, 'generation': st.one_of(st.none(), labels.filter(bool)),
    'model_read_at': times, 'installed_at': times,
    'counts': st.fixed_dictionaries(dict((key, counts) for key in _report.COUNTS))}))
def test_what_the_textfile_records_reads_back(record):
    back = _report.read_textfile(_report.render_textfile(record))
    for key, value in record.items():
        if key in ('last_run_at', 'last_success_at', 'model_read_at', 'installed_at', 'generation') and value is None:
            assert back.get(key) is None, key
        else:
            assert back[key] == value, key


@given(st.text(max_size=2000))
def test_any_damaged_textfile_reads_as_a_record(text):
    record = _report.read_textfile(text)
    again = _report.next_host_record(record, outcome(ok=False, way='failed', generation=None, counts=None), 5.0)
    assert again['failures'] >= 1 and not again['success']
    _report.render_textfile(again)


def results(lb_a, lb_b):
    return [('lb-a', lb_a), ('lb-b', lb_b)]


def test_the_run_report_of_a_good_run_then_a_failed_one():
    built = model(services=(('web', 80), ('dns', 53, 'UDP')))
    good = _report.run_report(None, built, results({'changed': True, 'reloaded': True, 'msg': 'lb-a: reloaded',
                                                    'generation': _report.generation(built),
                                                    'reload_reason': 'a service is new'},
                                                   {'changed': True, 'applied_at_runtime': True,
                                                    'runtime_changes': 2, 'msg': 'lb-b: applied'}), None, 1000.0)
    assert good['run'] == {'result': 'success', 'finished_at': 1000.0, 'check_mode': False, 'last_success_at': 1000.0,
                           'reloads': 1, 'runtime_updates': 1, 'runtime_server_changes': 2}
    assert good['model']['excluded_services'] == ['shop/dns 53/UDP: UDP ports cannot be balanced by HAProxy']
    assert good['model']['source'] == {'kind': 'api', 'server': 'https://k8s:6443', 'resource_version': '7',
                                       'read_at': 1000.0}
    assert good['load_balancers']['lb-a']['reload_reason'] == 'a service is new'
    assert good['load_balancers']['lb-b']['way'] == 'runtime'
    # the canary fails: the other is not reached, and both keep their last success, as does the run
    failed = _report.run_report(copy.deepcopy(good), built, results({'failed': True, 'msg': 'lb-a: refused'}, None),
                                {'stage': 'load balancer lb-a', 'message': 'lb-a: refused'}, 2000.0)
    assert failed['run']['result'] == 'failure' and failed['run']['last_success_at'] == 1000.0
    assert failed['run']['failed_stage'] == 'load balancer lb-a' and failed['run']['message'] == 'lb-a: refused'
    assert failed['load_balancers']['lb-a']['last_success_at'] == 1000.0
    assert failed['load_balancers']['lb-b'] == {'result': 'not reached', 'way': 'not reached', 'changed': False,
                                                'message': 'not reached: the run stopped before this load balancer',
                                                'last_success_at': 1000.0}
    # a run that could not read the cluster keeps the last model it knew
    unread = _report.run_report(failed, None, results(None, None), {'stage': 'collect', 'message': '401'}, 3000.0)
    assert unread['run']['failed_stage'] == 'collect' and unread['run']['last_success_at'] == 1000.0
    assert unread['model']['generation'] == good['model']['generation']
    # the job's stats leave the lists out
    assert 'excluded_services' not in _report.stats(good)['model'] and _report.stats(good)['run'] == good['run']


def test_a_check_run_reports_the_ways_it_would_go_and_no_success():
    built = model()
    report = _report.run_report({'run': {'last_success_at': 5.0}}, built,
                                results({'changed': True, 'reload_reason': 'new'}, {'changed': False}), None, 9.0,
                                check_mode=True)
    assert report['run']['check_mode'] and report['run']['last_success_at'] == 5.0
    assert [e['way'] for e in report['load_balancers'].values()] == ['reload', 'none']


def test_an_unreachable_load_balancer_fails_the_run():
    report = _report.run_report(None, model(), results({'changed': False}, {'unreachable': True, 'msg': 'ssh'}), None, 1.0)
    assert report['run']['result'] == 'failure' and report['load_balancers']['lb-b']['result'] == 'failure'
    assert report['run']['message'] == 'lb-b: ssh'
