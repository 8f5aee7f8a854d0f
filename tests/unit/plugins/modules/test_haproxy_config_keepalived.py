"""portico.k8s.haproxy_config with keepalived: the host step writes keepalived.conf and its health
check, validates with the real ``keepalived -t``, reloads a real keepalived (Debian's), and the
health check moves the floating address off a host whose HAProxy stops or whose sync was refused.

keepalived and the module run in a network namespace of the test's own (``ip netns``) with a veth
pair, so VRRP goes nowhere; its one peer (192.0.2.12) does not exist, so this host takes the
address after three missed adverts."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _keepalived, _model, _names
from tests.support.haproxy import HAProxy, minimal_config

MODULE = Path(__file__).resolve().parents[4] / 'plugins' / 'modules' / 'haproxy_config.py'
COLLECTIONS = Path(os.path.abspath(_names.__file__)).parents[5]
KEEPALIVED = shutil.which('keepalived') or '/usr/sbin/keepalived'
VIP = '192.0.2.100'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='network namespaces need root')


def load_balancer(address):
    """A LoadBalancer Service that asks for its own address (from the pool below)."""
    return {'namespace': 'shop', 'name': 'web-%s' % address.split('.')[-1], 'uid': 'uid-' + address,
            'resource_version': '7', 'created': '2026-01-01T00:00:00Z', 'type': 'LoadBalancer',
            'load_balancer_class': 'portico.io/haproxy', 'load_balancer_ip': address, 'ip_families': ['IPv4'],
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': 18080, 'node_port': 30080}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None, 'annotations': {},
            'ingress': [], 'status_manager': None}


def the_model(read_at=1000.0, addresses=()):
    node = {'name': 'w1', 'ready': 'True', 'addresses': [['InternalIP', '127.0.2.41']], 'labels': {}, 'taints': [],
            'unschedulable': False, 'deleting': False}
    built = _model.build_model([node], [load_balancer(a) for a in addresses],
                               {'address_pools': [{'name': 'lab', 'addresses': ['192.0.2.128/25']}]},
                               {'kind': 'snapshot', 'snapshot': 'c.json'})
    built['source']['read_at'] = read_at
    assert sorted(f['address'] for f in built['frontends']) == sorted(addresses), built
    return built


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, **kwargs)


class Lab:
    """A network namespace with one interface, a real HAProxy (its stats socket) and a real keepalived."""

    def __init__(self, root):
        self.root = root
        self.ns = 'portico-ka-%s' % uuid.uuid4().hex[:8]
        self.config = root / 'haproxy.cfg'
        self.socket = root / 'admin.sock'
        self.keepalived_conf = root / 'keepalived' / 'keepalived.conf'
        self.check_script = root / 'keepalived' / 'check'
        self.pids = root / 'pids'
        self.keepalived = None

    def __enter__(self):
        for argv in (['ip', 'netns', 'add', self.ns],
                     ['ip', '-n', self.ns, 'link', 'add', 'ka0', 'type', 'veth', 'peer', 'name', 'ka1'],
                     ['ip', '-n', self.ns, 'address', 'add', '192.0.2.11/24', 'dev', 'ka0'],
                     ['ip', '-n', self.ns, 'link', 'set', 'ka0', 'up'],
                     ['ip', '-n', self.ns, 'link', 'set', 'ka1', 'up'],
                     ['ip', '-n', self.ns, 'link', 'set', 'lo', 'up']):
            done = run(argv)
            if done.returncode:
                self.__exit__(None, None, None)
                raise RuntimeError('%s: %s' % (' '.join(argv), done.stderr))
        self.keepalived_conf.parent.mkdir(mode=0o755)
        self.keepalived_conf.write_text('global_defs {\n    router_id lab\n}\n')
        self.pids.mkdir()
        self.keepalived = subprocess.Popen(  # pylint: disable=consider-using-with
            ['ip', 'netns', 'exec', self.ns, KEEPALIVED, '--dont-fork', '--log-console', '--vrrp',
             '-f', str(self.keepalived_conf), '-p', str(self.pids / 'k.pid'), '-r', str(self.pids / 'v.pid')],
            stdout=open(self.root / 'keepalived.log', 'wb'), stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        deadline = time.monotonic() + 10
        while not (self.pids / 'k.pid').exists():
            if time.monotonic() > deadline or self.keepalived.poll() is not None:
                raise RuntimeError('keepalived did not start: %s' % (self.root / 'keepalived.log').read_text())
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        if self.keepalived is not None:
            self.keepalived.terminate()
            try:
                self.keepalived.wait(10)
            except subprocess.TimeoutExpired:
                self.keepalived.kill()
                self.keepalived.wait()
        run(['ip', 'netns', 'delete', self.ns])

    def reload_command(self):
        return '/bin/kill -HUP %s' % (self.pids / 'k.pid').read_text().strip()

    def call(self, model, check_mode=False, diff=False, keepalived=None, **args):
        options = dict(path=str(self.keepalived_conf), interface='ka0', address='192.0.2.11', peers=['192.0.2.12'],
                       vips=[VIP], check_script=str(self.check_script), reload_command=self.reload_command(),
                       advert_interval=0.2)
        options.update(keepalived or {})
        params = dict(path=str(self.config), base=minimal_config(self.socket), model=model, reload_timeout=10,
                      reload_command='/bin/kill -USR2 %d' % self.proxy.master_pid, cert_dir=str(self.root / 'certs'), load_balancer='lb1',
                      lock_timeout=1, keepalived=options, runtime_changes=False)
        params.update(args)
        params.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        path = self.root / ('args-%d.json' % time.monotonic_ns())
        path.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': params}))
        done = run(['ip', 'netns', 'exec', self.ns, sys.executable, str(MODULE), str(path)],
                   env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)))
        path.unlink()
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise AssertionError('the module printed no JSON: %s %s' % (done.stdout, done.stderr))

    def holds(self, address=VIP):
        shown = run(['ip', '-n', self.ns, '-json', 'address', 'show', 'dev', 'ka0']).stdout
        return any(info.get('local') == address for link in json.loads(shown) for info in link.get('addr_info', []))

    def wait_for(self, holding, address=VIP, seconds=15):
        deadline = time.monotonic() + seconds
        while self.holds(address) is not holding:
            if time.monotonic() > deadline:
                raise AssertionError('%s still %s the address after %ss: %s' % (
                    'lacks' if holding else 'holds', address, seconds, (self.root / 'keepalived.log').read_text()[-3000:]))
            time.sleep(0.1)


@pytest.fixture
def lab(tmp_path):
    root = tmp_path / 'lb'
    root.mkdir()
    root.chmod(0o755)
    tmp_path.chmod(0o755)
    with Lab(root) as made:
        made.config.write_text(minimal_config(made.socket))
        with HAProxy(made.config, root / 'haproxy.pid') as proxy:
            made.proxy = proxy
            yield made


def test_the_host_step_installs_keepalived_and_the_address_follows_haproxy(lab):
    result = lab.call(the_model(addresses=['192.0.2.150']), diff=True)
    assert not result.get('failed'), result['msg']
    assert result['keepalived_changed'] and result['changed']
    assert result['floating_addresses'] == ['192.0.2.100/32', '192.0.2.150/32']
    assert 'keepalived: installed the new %s and reloaded keepalived' % lab.keepalived_conf in result['msg']
    conf = lab.keepalived_conf.read_text()
    assert '        192.0.2.150/32 dev ka0\n' in conf and 'unicast_peer {\n        192.0.2.12\n' in conf
    assert [d['after_header'] for d in result['diff']][-2:] == [str(lab.keepalived_conf), str(lab.check_script)]
    assert lab.check_script.stat().st_mode & 0o777 == 0o755
    assert lab.check_script.read_text().startswith('#!%s\n' % sys.executable)
    lab.wait_for(True)
    lab.wait_for(True, '192.0.2.150')

    files = (lab.keepalived_conf.read_bytes(), lab.check_script.read_bytes())
    again = lab.call(the_model(read_at=2000.0, addresses=['192.0.2.150']))
    assert not again['changed'] and not again['keepalived_changed'], again
    assert 'keepalived: %s is up to date' % lab.keepalived_conf in again['msg']
    assert (lab.keepalived_conf.read_bytes(), lab.check_script.read_bytes()) == files

    # HAProxy stops answering: the health check fails and keepalived gives the address up
    lab.proxy.stop()
    lab.wait_for(False)


def test_check_mode_shows_the_keepalived_diff_and_changes_nothing(lab):
    assert not lab.call(the_model()).get('failed')
    before = lab.keepalived_conf.read_text()
    result = lab.call(the_model(read_at=2000.0), check_mode=True, diff=True, keepalived=dict(vips=[VIP, '192.0.2.101']))
    assert not result.get('failed'), result['msg']
    assert result['changed'] and result['keepalived_changed']
    assert 'keepalived would be reloaded' in result['msg']
    diff = [d for d in result['diff'] if d['after_header'] == str(lab.keepalived_conf)][0]
    assert '192.0.2.101/32 dev ka0' in diff['after'] and diff['before'] == before
    assert lab.keepalived_conf.read_text() == before
    assert [p.name for p in lab.keepalived_conf.parent.iterdir()] == ['keepalived.conf', 'check'] or sorted(
        p.name for p in lab.keepalived_conf.parent.iterdir()) == ['check', 'keepalived.conf']


def test_a_refused_sync_takes_the_address_away_until_a_good_one(lab):
    assert not lab.call(the_model()).get('failed')
    lab.wait_for(True)
    refused = lab.call(the_model(read_at=2000.0, addresses=['192.0.2.150']), validate='/bin/false %s')
    assert refused['failed'] and 'failed to validate' in refused['msg'], refused
    mark = Path(str(lab.config) + _keepalived.REFUSED_SUFFIX)
    assert 'failed to validate' in mark.read_text()
    lab.wait_for(False)
    # keepalived was left alone: the refused model's Service address is not in its file
    assert '192.0.2.150' not in lab.keepalived_conf.read_text()
    good = lab.call(the_model(read_at=3000.0))
    assert not good.get('failed'), good['msg']
    assert good['changed'] and 'serves the current configuration again' in good['msg']
    assert not mark.exists()
    lab.wait_for(True)


def test_a_file_keepalived_refuses_is_not_installed(lab):
    assert not lab.call(the_model()).get('failed')
    before = lab.keepalived_conf.read_text()
    result = lab.call(the_model(read_at=2000.0), keepalived=dict(interface='nosuch0'))
    assert result['failed'] and 'failed to validate with \'keepalived -t -f <candidate>\'' in result['msg'], result
    assert lab.keepalived_conf.read_text() == before
    assert sorted(p.name for p in lab.keepalived_conf.parent.iterdir()) == ['check', 'keepalived.conf']
    # HAProxy took the model: this host is not marked as refused
    assert not Path(str(lab.config) + _keepalived.REFUSED_SUFFIX).exists()


def test_a_failed_keepalived_reload_puts_the_previous_file_back(lab):
    assert not lab.call(the_model()).get('failed')
    before = lab.keepalived_conf.read_text()
    result = lab.call(the_model(read_at=2000.0), keepalived=dict(vips=['192.0.2.101'], reload_command='/bin/false'))
    assert result['failed'] and 'Reloading keepalived failed (the keepalived reload command exited 1' in result['msg']
    assert lab.keepalived_conf.read_text() == before


@pytest.mark.parametrize('options, words', [
    (dict(interface='ka0 }'), 'haproxy_sync_vrrp_interface'),
    (dict(vips=['192.0.2.100 dev lo']), 'not an IP address'),
    (dict(peers=[]), 'no VRRP peer'),
])
def test_bad_settings_change_nothing_and_name_the_setting(lab, options, words):
    before = lab.config.read_text()
    result = lab.call(the_model(), keepalived=options)
    assert result['failed'] and words in result['msg'] and 'nothing was changed' in result['msg'], result
    assert lab.keepalived_conf.read_text() == 'global_defs {\n    router_id lab\n}\n'
    assert not lab.check_script.exists()
    # checked before HAProxy was touched
    assert lab.config.read_text() == before and not result['reloaded']


def test_a_refusal_while_no_other_host_took_the_model_leaves_the_address(lab):
    assert not lab.call(the_model()).get('failed')
    lab.wait_for(True)
    refused = lab.call(the_model(read_at=2000.0, addresses=['192.0.2.150']), validate='/bin/false %s',
                       keepalived=dict(peers_updated=False))
    assert refused['failed'] and 'failed to validate' in refused['msg'], refused
    # the first host of a rollout: every host still runs the same configuration, so nothing moves
    assert not Path(str(lab.config) + _keepalived.REFUSED_SUFFIX).exists()
    time.sleep(1.5)
    assert lab.holds()
