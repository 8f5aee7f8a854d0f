"""keepalived: settings checked, the file they make, the health check, the rollout order."""

import ipaddress
import os
import socket
import subprocess
import sys
import threading

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _keepalived
from ansible_collections.portico.k8s.plugins.module_utils._keepalived import VrrpError
from tests.support.haproxy import HAProxy, minimal_config

BASE = dict(interface='eth0', address='192.0.2.11', peers=['192.0.2.12'], check_script='/etc/keepalived/check',
            config_path='/etc/haproxy/haproxy.cfg', runtime_socket='/run/haproxy/admin.sock', name='lb1')


def vrrp(**changes):
    return _keepalived.settings(dict(BASE, **changes))


def text(**changes):
    return _keepalived.render(vrrp(**changes), _keepalived.floating_addresses(['192.0.2.100']))


def test_render_one_instance_over_unicast_non_preemptive():
    conf = text()
    assert '    state BACKUP\n    nopreempt\n    interface eth0\n' in conf
    assert '    unicast_src_ip 192.0.2.11\n    unicast_peer {\n        192.0.2.12\n    }\n' in conf
    assert '        192.0.2.100/32 dev eth0\n' in conf
    assert 'script "/etc/keepalived/check /etc/haproxy/haproxy.cfg /run/haproxy/admin.sock"' in conf
    assert 'track_script {\n        portico_haproxy\n    }' in conf
    assert conf.count('{') == conf.count('}')
    assert 'nopreempt' not in text(preempt=True)
    assert '    vrrp_version 3\n' in conf and 'advert_int 0.25\n' in text(advert_interval=0.25)


def test_addresses_of_the_other_family_move_as_excluded():
    addresses = _keepalived.floating_addresses(['2001:db8::10', '192.0.2.100/24'], {'frontends': [
        {'name': 'a', 'address': '192.0.2.7'}, {'name': 'b'}, {'name': 'c', 'address': '192.0.2.7'}]})
    assert [str(a) for a in addresses] == ['192.0.2.7/32', '192.0.2.100/24', '2001:db8::10/128']
    conf = _keepalived.render(vrrp(), addresses)
    assert 'virtual_ipaddress_excluded {\n        2001:db8::10/128 dev eth0\n    }' in conf
    assert [str(a) for a in _keepalived.floating_addresses(['192.0.2.100'], {'frontends': [
        {'address': '192.0.2.7'}]}, with_services=False)] == ['192.0.2.100/32']


@pytest.mark.parametrize('changes, words', [
    (dict(interface='eth0\n}'), 'haproxy_sync_vrrp_interface'),
    (dict(interface='a-very-long-interface'), 'haproxy_sync_vrrp_interface'),
    (dict(address='lb1.example'), 'haproxy_sync_vrrp_address'),
    (dict(address='2001:db8::11%x\n}\nvrrp_script evil {'), 'haproxy_sync_vrrp_address'),
    (dict(peers=['2001:db8::12%x\n    }\n}\nvrrp_script evil {\n    script "touch pwned"']), 'VRRP peer'),
    (dict(peers=['192.0.2.12 }']), 'VRRP peer'),
    (dict(peers=['2001:db8::12']), 'not of the family'),
    (dict(router_id=0), 'haproxy_sync_vrrp_router_id'),
    (dict(router_id=256), 'haproxy_sync_vrrp_router_id'),
    (dict(router_id='5 6'), 'haproxy_sync_vrrp_router_id'),
    (dict(priority=255), 'haproxy_sync_vrrp_priority'),
    (dict(priority=True), 'haproxy_sync_vrrp_priority'),
    (dict(advert_interval='fast'), 'haproxy_sync_vrrp_advert_interval'),
    (dict(advert_interval=0), 'haproxy_sync_vrrp_advert_interval'),
    (dict(check_script='relative/check'), 'haproxy_sync_keepalived_check_script'),
    (dict(check_script='/etc/check" x'), 'haproxy_sync_keepalived_check_script'),
    (dict(check_script='/etc/../tmp/check'), 'haproxy_sync_keepalived_check_script'),
])
def test_bad_settings_name_the_setting(changes, words):
    with pytest.raises(VrrpError, match=words):
        vrrp(**changes)


@pytest.mark.parametrize('vip, words', [
    ('192.0.2.100 dev lo', 'not an IP address'),
    ('fe80::1%eth0\n}', 'not an IP address'),
    ('2001:db8::1%x/64', 'not an IP address'),
    ('224.0.0.18', 'cannot float'),
    ('127.0.0.1', 'cannot float'),
    ('fe80::1', 'cannot float'),
    ('0.0.0.0', 'cannot float'),
])
def test_bad_floating_addresses_are_refused(vip, words):
    with pytest.raises(VrrpError, match=words):
        _keepalived.floating_addresses([vip])


def test_nothing_to_float_or_no_peer_is_refused():
    with pytest.raises(VrrpError, match='no floating address'):
        _keepalived.render(vrrp(), [])
    with pytest.raises(VrrpError, match='no VRRP peer'):
        _keepalived.render(vrrp(peers=['192.0.2.11']), _keepalived.floating_addresses(['192.0.2.100']))
    with pytest.raises(VrrpError, match='of its own family'):
        _keepalived.render(vrrp(), _keepalived.floating_addresses(['2001:db8::1']))
    with pytest.raises(VrrpError, match='twice'):
        _keepalived.floating_addresses(['192.0.2.100/24', '192.0.2.100/25'])


def test_a_service_address_that_cannot_float_is_refused():
    with pytest.raises(VrrpError, match='the Service address'):
        _keepalived.floating_addresses([], {'frontends': [{'address': '127.0.5.1'}]})


ipv4 = st.integers(min_value=0xC0000201, max_value=0xC00002FE).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(min_value=1, max_value=2 ** 32).map(lambda n: str(ipaddress.IPv6Address((0x20010db8 << 96) + n)))


@given(peers=st.lists(ipv4, max_size=5), vips=st.lists(st.one_of(ipv4, ipv6), min_size=1, max_size=8),
       router_id=st.integers(1, 255), priority=st.integers(1, 254), preempt=st.booleans(),
       interval=st.floats(0.01, 255), services=st.lists(ipv4, max_size=4))
def test_rendered_file_holds_exactly_its_addresses(peers, vips, router_id, priority, preempt, interval, services):
    settings = vrrp(peers=peers + ['192.0.2.255'], router_id=router_id, priority=priority, preempt=preempt,
                    advert_interval=interval)
    addresses = _keepalived.floating_addresses(vips + ['192.0.2.254'], {'frontends': [{'address': a} for a in services]})
    conf = _keepalived.render(settings, addresses)
    lines = conf.splitlines()
    assert conf.count('{') == conf.count('}')
    listed = [line.split()[0] for line in lines if line.endswith(' dev eth0')]
    assert sorted(listed) == sorted(a.with_prefixlen for a in addresses)
    assert len(set(listed)) == len(listed)
    expected = set(str(ipaddress.ip_address(p)) for p in peers + ['192.0.2.255']) - {'192.0.2.11'}
    start = lines.index('    unicast_peer {')
    assert set(line.strip() for line in lines[start + 1:lines.index('    }', start)]) == expected
    assert ('    nopreempt' in lines) is not preempt
    # what the rollout reads back from the file: every floating address, nothing else
    assert sorted(_keepalived.configured_addresses(conf)) == sorted(a.with_prefixlen for a in addresses)
    assert '    virtual_router_id %d' % router_id in lines and '    priority %d' % priority in lines


@given(st.dictionaries(st.sampled_from('abcdefg'), st.one_of(st.none(), st.booleans())),
       st.permutations(list('abcdefg')))
def test_rollout_puts_holders_last_and_alone(holding, hosts):
    order, batches = _keepalived.rollout(hosts, holding)
    assert sorted(order) == sorted(hosts)
    holders = [h for h in hosts if holding.get(h) is True]
    assert set(order[len(order) - len(holders):]) == set(holders)
    assert order[:len([h for h in hosts if holding.get(h) is False])] == [h for h in hosts if holding.get(h) is False]
    if batches is None:
        assert not holders or len(hosts) < 2
    else:
        assert sum(batches) == len(hosts) and all(b > 0 for b in batches)
        # a canary first, always; the holders alone and last when another host can go before them
        assert batches[0] == 1 and len(batches) >= 2
        if len(holders) < len(hosts):
            assert batches[-1] == len(holders)


def test_holds_compares_addresses_not_prefixes():
    assert _keepalived.holds(['192.0.2.100/32', '2001:db8::1/128'], ['192.0.2.100/24', 'fe80::1/64', 'junk']) == [
        '192.0.2.100']
    assert _keepalived.holds(['192.0.2.100/32'], ['192.0.2.101/24']) == []


def _check(tmp_path, sock, refused=False):
    script = tmp_path / 'check'
    script.write_text(_keepalived.check_script(sys.executable))
    script.chmod(0o755)
    config = tmp_path / 'haproxy.cfg'
    if refused:
        (tmp_path / ('haproxy.cfg' + _keepalived.REFUSED_SUFFIX)).write_text('refused\n')
    return subprocess.run([str(script), str(config), str(sock)], capture_output=True, timeout=10, check=False).returncode


def _answering(path, answer):
    """A stand-in stats socket that answers every connection the same way until closed."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)

    def serve():
        while True:
            try:
                connection = server.accept()[0]
            except OSError:
                return
            with connection:
                connection.recv(100)
                connection.sendall(answer)
    threading.Thread(target=serve, daemon=True).start()
    return server


def test_health_check_passes_only_when_haproxy_answers_and_nothing_was_refused(tmp_path):
    sock = tmp_path / 'admin.sock'
    assert _check(tmp_path, sock) == 1  # no HAProxy
    with _answering(sock, b'Name: HAProxy\nVersion: 2.6\nPid: 42\nUptime: 0d\n'):
        assert _check(tmp_path, sock) == 0
    os.unlink(sock)
    with _answering(sock, b'Unknown command\n'):
        assert _check(tmp_path, sock) == 1
    os.unlink(sock)
    with _answering(sock, b'Name: HAProxy\nPid: 42\n'):
        assert _check(tmp_path, sock, refused=True) == 1


def test_health_check_against_real_haproxy(tmp_path):
    sock = tmp_path / 'admin.sock'
    config = tmp_path / 'haproxy.cfg'
    config.write_text(minimal_config(sock))
    with HAProxy(config, tmp_path / 'haproxy.pid'):
        assert _check(tmp_path, sock) == 0
    assert _check(tmp_path, sock) == 1
