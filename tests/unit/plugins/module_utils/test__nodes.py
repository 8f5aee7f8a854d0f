"""Node eligibility: every rule, each named in its reason; address choice by type and family."""

import subprocess

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _cluster, _model, _nodes
from tests.fakeapi import objects


def slim(**kwargs):
    kwargs.setdefault('internal_ips', '10.0.0.1')
    return _cluster.slim_node(objects.node('w1', **kwargs))


def control_plane():
    # kubeadm also labels control-plane nodes for exclusion; take that away to see the role rule alone
    node = slim(roles=['control-plane'])
    node['labels'].pop(_nodes.EXCLUDE_LABEL, None)
    return node


def reason(node, **options):
    eligible, excluded = _nodes.eligible_nodes([node], options)
    return excluded[0]['reason'] if excluded else None


def test_a_ready_worker_is_eligible():
    assert reason(slim()) is None


@pytest.mark.parametrize('node,expected', [
    (slim(ready=False), 'not Ready (Ready condition is False)'),
    (slim(ready=None), 'not Ready (Ready condition is Unknown)'),
    (slim(labels={_nodes.EXCLUDE_LABEL: ''}), 'labelled node.kubernetes.io/exclude-from-external-load-balancers'),
    (slim(taints=[{'key': 'ToBeDeletedByClusterAutoscaler', 'value': '1700000000', 'effect': 'NoSchedule'}]),
     'marked for deletion by the cluster autoscaler (taint ToBeDeletedByClusterAutoscaler)'),
    (control_plane(),
     'control-plane node (label node-role.kubernetes.io/control-plane); set include_control_plane to use it'),
    (slim(internal_ips=[], external_ips=[]), 'no address of type InternalIP or ExternalIP'),
])
def test_each_rule_names_itself(node, expected):
    assert reason(node) == expected


def test_a_node_being_deleted_is_out():
    obj = objects.node('w1', internal_ips='10.0.0.1')
    obj['metadata']['deletionTimestamp'] = '2026-11-27T00:00:00Z'
    assert reason(_cluster.slim_node(obj)) == 'being deleted (deletionTimestamp is set)'


def test_cordoned_nodes_are_kept_unless_asked():
    node = slim(unschedulable=True)
    assert reason(node) is None
    assert reason(node, exclude_cordoned=True) == 'cordoned (spec.unschedulable) and exclude_cordoned is set'


def test_control_plane_nodes_can_be_included():
    assert reason(control_plane(), include_control_plane=True) is None


def test_dual_stack_nodes_pick_the_configured_family():
    node = slim(internal_ips=['192.168.10.22', 'fd00:10::22'])
    for family, expected in (('any', '192.168.10.22'), ('ipv4', '192.168.10.22'), ('ipv6', '[fd00:10::22]')):
        eligible, dummy = _nodes.eligible_nodes([node], {'address_family': family})
        assert eligible == [{'name': 'w1', 'address': expected}]
    single = slim(internal_ips='10.0.0.1')
    assert reason(single, address_family='ipv6') == 'no ipv6 address of type InternalIP or ExternalIP (has 10.0.0.1)'


def test_node_selector_applies_to_a_snapshot(tmp_path):
    path = tmp_path / 'cluster.json'
    import json
    path.write_text(json.dumps(objects.cluster_list([
        objects.node('edge-1', labels={'role': 'edge'}), objects.node('batch-1')])))
    nodes = _cluster.read_snapshot(str(path), _cluster.ServiceFilter(), 'role=edge')[0]
    assert [n['name'] for n in nodes] == ['edge-1']


def test_ipv6_node_addresses_pass_haproxy_check(tmp_path):
    nodes = [slim(internal_ips='fd00:10::22'), dict(slim(internal_ips='10.0.0.2'), name='w2')]
    service = {'namespace': 'a', 'name': 'web', 'created': '', 'type': 'NodePort',
               'ports': [{'name': '', 'protocol': 'TCP', 'port': 8080, 'node_port': 30080}]}
    model = _model.build_model(nodes, [service])
    lines = ['defaults', '    mode tcp', '    timeout connect 1s', '    timeout client 1s', '    timeout server 1s',
             'frontend f', '    bind 127.0.0.1:28999', '    default_backend b', 'backend b']
    lines += ['    server %s %s:30080 check' % (n['name'], n['address']) for n in model['nodes']]
    config = tmp_path / 'v6.cfg'
    config.write_text('\n'.join(lines) + '\n')
    assert '[fd00:10::22]' in config.read_text()
    result = subprocess.run(['haproxy', '-c', '-f', str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
