"""Graceful removal across runs: a node that leaves drains first, then goes."""

import json
import os
import stat
import subprocess

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _collect, _model
from ansible_collections.portico.k8s.plugins.module_utils._client import KubeError
from ansible_collections.portico.k8s.plugins.module_utils._drain import (
    DrainStateError,
    check_state,
    cluster_of,
    draining_nodes,
    keep_record,
    record,
    state_for,
)
from tests.fakeapi import objects


def node(name, address):
    return {'name': name, 'ready': 'True', 'addresses': [['InternalIP', address]]}


SERVICE = {'namespace': 'a', 'name': 'web', 'created': '', 'type': 'NodePort',
           'ports': [{'name': '', 'protocol': 'TCP', 'port': 80, 'node_port': 30080}]}


def run(nodes, state, now, drain_seconds=0):
    model = _model.build_model(nodes, [SERVICE], {'drain_state': state, 'now': now, 'drain_seconds': drain_seconds})
    return model, {'nodes': model['nodes'], 'draining_nodes': model['draining_nodes']}


def test_a_node_that_leaves_drains_for_one_run_then_goes():
    both = [node('w1', '10.0.0.1'), node('w2', '10.0.0.2')]
    model, state = run(both, None, now=100)
    assert model['draining_nodes'] == []
    model, state = run(both[:1], state, now=160)
    assert model['draining_nodes'] == [{'name': 'w2', 'address': '10.0.0.2', 'since': 160}]
    model, state = run(both[:1], state, now=220)
    assert model['draining_nodes'] == []


def test_drain_seconds_keeps_it_longer():
    both = [node('w1', '10.0.0.1'), node('w2', '10.0.0.2')]
    dummy, state = run(both, None, now=0)
    dummy, state = run(both[:1], state, now=10, drain_seconds=300)
    model, state = run(both[:1], state, now=200, drain_seconds=300)
    assert [n['since'] for n in model['draining_nodes']] == [10]
    model, state = run(both[:1], state, now=310, drain_seconds=300)
    assert model['draining_nodes'] == []


def test_a_node_that_comes_back_stops_draining():
    both = [node('w1', '10.0.0.1'), node('w2', '10.0.0.2')]
    dummy, state = run(both, None, now=0)
    dummy, state = run(both[:1], state, now=10)
    model, state = run(both, state, now=20)
    assert model['draining_nodes'] == [] and len(model['nodes']) == 2


def test_stored_entries_go_through_the_allow_list():
    state = {'nodes': [{'name': 'ok', 'address': '[fd00::1]'}, {'name': 'bad\nname', 'address': '10.0.0.9'},
                       {'name': 'w9', 'address': '10.0.0.9 backup'}, 'junk'],
             'draining_nodes': 'junk'}
    assert draining_nodes(state, [], now=5) == [{'name': 'ok', 'address': '[fd00::1]', 'since': 5}]
    assert draining_nodes('junk', [], now=5) == []


# ---------------------------------------------------------------- the state file: its cluster, its shape

def _snapshot(path, nodes):
    path.write_text(json.dumps(objects.cluster_list(
        [objects.node(name, internal_ips=address) for name, address in nodes]
        + [objects.service('web', 'shop', type='NodePort', ports=[objects.service_port(80, node_port=30080)])])))
    return str(path)


def collect_with(snapshot, state_file, **options):
    warnings = []
    options = dict(options, snapshot=snapshot, drain_state_file=str(state_file))
    model = _collect.collect(options.get, warnings.append)[0]
    return model, warnings


def _remember(model, state_file):
    """What the role's remember step writes."""
    state_file.write_text(json.dumps({'source': model['source'], 'nodes': model['nodes'],
                                      'draining_nodes': model['draining_nodes']}))


def test_the_state_of_another_cluster_is_ignored_with_a_warning(tmp_path):
    state = tmp_path / 'drain-state.json'
    cluster_a = _snapshot(tmp_path / 'a.json', [('a-1', '10.0.0.1'), ('a-2', '10.0.0.2')])
    cluster_b = _snapshot(tmp_path / 'b.json', [('b-1', '10.0.1.1')])
    model, warnings = collect_with(cluster_a, state)
    assert warnings == [] and model['draining_nodes'] == []
    _remember(model, state)
    model, warnings = collect_with(cluster_b, state)
    assert model['draining_nodes'] == []
    assert [n['name'] for n in model['nodes']] == ['b-1']
    assert warnings == ['the drain state file %s is about the cluster snapshot %s, not the cluster snapshot %s, which '
                        'this run read: it was ignored, so a node that left this cluster is removed at once instead '
                        'of draining. Give each cluster a drain state file of its own '
                        '(haproxy_sync_drain_state_file); the next run records this one' % (state, cluster_a, cluster_b)]
    # the same cluster's state drains as before
    model, warnings = collect_with(_snapshot(tmp_path / 'a.json', [('a-1', '10.0.0.1')]), state)
    assert warnings == [] and [n['name'] for n in model['draining_nodes']] == ['a-2']


def test_a_cluster_is_its_api_server_url_or_its_snapshot_path(tmp_path, monkeypatch):
    api = {'kind': 'api', 'server': 'https://K8S.example.com:6443/', 'resource_version': '1'}
    assert cluster_of(api) == cluster_of({'kind': 'api', 'server': 'https://k8s.example.com:6443'})
    assert cluster_of(api) != cluster_of({'kind': 'api', 'server': 'https://k8s.example.com:7443'})
    monkeypatch.chdir(tmp_path)
    assert cluster_of({'kind': 'snapshot', 'snapshot': 'c.json'}) == ('snapshot', str(tmp_path / 'c.json'))
    assert cluster_of({'kind': 'snapshot', 'snapshot': 'c.json'}) != cluster_of(api)
    assert cluster_of({}) is None and cluster_of('junk') is None
    state = {'source': api, 'nodes': [{'name': 'w1', 'address': '10.0.0.1'}]}
    assert state_for(state, {'kind': 'api', 'server': 'https://k8s.example.com:6443'}) == (state, None)
    assert state_for(state, {'kind': 'snapshot', 'snapshot': 'c.json'})[0] is None


def test_a_state_that_does_not_name_its_cluster_is_used_with_a_warning():
    state = {'nodes': [{'name': 'w1', 'address': '10.0.0.1'}]}
    used, warning = state_for(state, {'kind': 'api', 'server': 'https://k8s.example.com:6443'}, 'the file x')
    assert used is state
    assert warning == ('the file x does not say which cluster it is about (an older version wrote it); it was used '
                       'as the state of the Kubernetes API https://k8s.example.com:6443, which this run read, and '
                       'the next run records that')
    assert state_for(dict(state, source={}), {'kind': 'snapshot', 'snapshot': '/c.json'})[0] == dict(state, source={})


@pytest.mark.parametrize('text,problem', [
    ('{"nodes": [', 'is not JSON (Expecting value: line 1 column 12 (char 11))'),
    (b'\xff\xfe', "is not JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"),
    ('[]', 'is not a drain state: it holds a JSON list, not an object with "nodes" and "draining_nodes"'),
    ('"x"', 'is not a drain state: it holds a JSON str, not an object with "nodes" and "draining_nodes"'),
    ('{"nodes": {"w1": "10.0.0.1"}}', 'is not a drain state: "nodes" is a dict, not a list of nodes'),
    ('{"draining_nodes": ["w1"]}',
     'is not a drain state: entry 0 of "draining_nodes" is not a node with a name and an address (not an object)'),
    ('{"nodes": [{"name": "w1"}]}', 'is not a drain state: entry 0 of "nodes" is not a node with a name and an address'),
    ('{"nodes": [], "source": "cluster-a"}', 'is not a drain state: "source" is a str, not the source of a routing model'),
])
def test_a_corrupt_state_file_stops_the_run_naming_the_file_and_the_fix(tmp_path, text, problem):
    state = tmp_path / 'drain-state.json'
    if isinstance(text, bytes):
        state.write_bytes(text)
    else:
        state.write_text(text)
    snapshot = _snapshot(tmp_path / 'a.json', [('a-1', '10.0.0.1')])
    with pytest.raises(KubeError) as raised:
        collect_with(snapshot, state)
    message = str(raised.value)
    assert message.startswith('the drain state file %s %s' % (state, problem)), message
    assert message.endswith('; it is written by the portico.k8s.haproxy_sync role after every run (the nodes the '
                            'load balancers served); remove the file (the next run then removes a node that leaves '
                            'at once instead of draining it, and records a new state) or point '
                            'haproxy_sync_drain_state_file (option drain_state_file) at another file; nothing was '
                            'changed')


def test_a_missing_state_file_is_the_first_run_and_an_unreadable_one_is_named(tmp_path):
    snapshot = _snapshot(tmp_path / 'a.json', [('a-1', '10.0.0.1')])
    model, warnings = collect_with(snapshot, tmp_path / 'none-yet.json')
    assert warnings == [] and [n['name'] for n in model['nodes']] == ['a-1']
    with pytest.raises(KubeError, match='cannot read the drain state file %s: Is a directory; ' % tmp_path):
        collect_with(snapshot, tmp_path)


def test_a_state_given_as_an_option_is_checked_too(tmp_path):
    snapshot = _snapshot(tmp_path / 'a.json', [('a-1', '10.0.0.1')])
    with pytest.raises(KubeError, match='^drain_state is not a drain state: "nodes" is a str, not a list of nodes'):
        _collect.collect({'snapshot': snapshot, 'drain_state': {'nodes': 'a-1'}}.get)
    with pytest.raises(KubeError, match='^drain_state and drain_state_file are mutually exclusive'):
        _collect.collect({'snapshot': snapshot, 'drain_state': {}, 'drain_state_file': 'x'}.get)


def _record(*names):
    return record({'source': {'kind': 'snapshot', 'snapshot': '/c.json', 'read_at': 1.0},
                   'nodes': [{'name': name, 'address': '10.0.0.%d' % (i + 1)} for i, name in enumerate(names)],
                   'draining_nodes': []})


def test_the_record_is_kept_with_mode_0600_and_an_unchanged_one_is_not_touched(tmp_path):
    path = tmp_path / 'state.json'
    assert keep_record(str(path), _record('a-1')) == (True, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert check_state(json.loads(path.read_text()))['nodes'][0]['name'] == 'a-1'
    before = path.stat()
    assert keep_record(str(path), _record('a-1')) == (False, _record('a-1'))
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # a new state replaces the file (a new inode: a reader sees the old one or the new one)
    assert keep_record(str(path), _record('a-1', 'a-2')) == (True, _record('a-1'))
    assert path.read_text() == _record('a-1', 'a-2') and path.stat().st_ino != before.st_ino
    assert [p.name for p in tmp_path.iterdir()] == ['state.json']


def test_a_wrong_mode_alone_is_set_right_and_counts_as_a_change(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text(_record('a-1'))
    path.chmod(0o644)
    inode = path.stat().st_ino
    assert keep_record(str(path), _record('a-1'), check_mode=True) == (True, _record('a-1'))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert keep_record(str(path), _record('a-1')) == (True, _record('a-1'))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_ino == inode
    assert keep_record(str(path), _record('a-1')) == (False, _record('a-1'))


def test_check_mode_says_what_would_change_and_touches_nothing(tmp_path):
    path = tmp_path / 'new' / 'dir' / 'state.json'
    assert keep_record(str(path), _record('a-1'), check_mode=True) == (True, None)
    assert not (tmp_path / 'new').exists()
    existing = tmp_path / 'state.json'
    existing.write_text(_record('a-1'))
    existing.chmod(0o600)
    assert keep_record(str(existing), _record('b-1'), check_mode=True) == (True, _record('a-1'))
    assert existing.read_text() == _record('a-1')


def test_missing_directories_are_made_for_this_user_only_and_an_existing_one_keeps_its_mode(tmp_path):
    shared = tmp_path / 'shared'
    shared.mkdir()
    shared.chmod(0o755)
    path = shared / 'a' / 'b' / 'state.json'
    assert keep_record(str(path), _record('a-1'))[0] is True
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert [stat.S_IMODE(d.stat().st_mode) for d in (shared / 'a', shared / 'a' / 'b')] == [0o700, 0o700]


def test_a_file_that_cannot_be_written_is_named_and_left_as_it_was(tmp_path):
    blocker = tmp_path / 'not-a-directory'
    blocker.write_text('x')
    with pytest.raises(DrainStateError, match='^cannot write the drain state file %s: Not a directory; let this user '
                                              'write it' % (blocker / 'state.json')):
        keep_record(str(blocker / 'state.json'), _record('a-1'))
    with pytest.raises(DrainStateError, match='^cannot write the drain state file %s: Is a directory' % tmp_path):
        keep_record(str(tmp_path), _record('a-1'))
    assert blocker.read_text() == 'x'


def test_a_directory_where_no_file_can_be_made_leaves_the_old_state(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir()
    path = locked / 'state.json'
    path.write_text(_record('a-1'))
    # immutable: even root makes no file there (where the file system has the attribute)
    if subprocess.run(['chattr', '+i', str(locked)], capture_output=True, check=False).returncode != 0:
        pytest.skip('this file system has no immutable attribute')
    try:
        with pytest.raises(DrainStateError, match='^cannot write the drain state file %s: Operation not permitted; '
                                                  '.* the file still holds the nodes an earlier run served$' % path):
            keep_record(str(path), _record('a-1', 'a-2'))
    finally:
        subprocess.run(['chattr', '-i', str(locked)], check=True)
    assert path.read_text() == _record('a-1') and os.listdir(str(locked)) == ['state.json']
