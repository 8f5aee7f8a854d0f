"""Allow-list parsers: what passes is safe to print in haproxy.cfg, what fails says why."""

import re

import pytest
from hypothesis import given, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _names

# Characters HAProxy gives meaning to, or that end a line: none may survive a parser.
SAFE = re.compile(r'\A[a-z0-9.\-\[\]:]+\Z')


@given(st.text(max_size=80))
def test_any_accepted_name_is_plain(text):
    for parser in (_names.namespace_name, _names.service_name, _names.node_name):
        try:
            value = parser(text)
        except _names.InvalidValue as exc:
            assert str(exc)
            continue
        assert SAFE.match(value)


@given(st.text(max_size=60), st.sampled_from(['InternalIP', 'ExternalIP', 'Hostname']))
def test_any_accepted_address_is_plain(text, address_type):
    try:
        value = _names.server_address(text, address_type)
    except _names.InvalidValue as exc:
        assert address_type in str(exc) or 'node name' in str(exc)
        return
    assert SAFE.match(value)


@given(st.ip_addresses())
def test_every_ip_address_is_accepted_but_ipv4_mapped_ones(address):
    if address.version == 6 and address.ipv4_mapped is not None:
        with pytest.raises(_names.InvalidValue, match='is an IPv4-mapped IPv6 address; give the IPv4 address %s'
                           % address.ipv4_mapped):
            _names.server_address(str(address), 'InternalIP')
        return
    value = _names.server_address(str(address), 'InternalIP')
    if address.version == 6:
        assert value == '[%s]' % address.compressed
    else:
        assert value == str(address)


# Python's ipaddress reads "%" and then any text as an IPv6 zone id, newlines included.
@given(st.ip_addresses(v=6), st.text(min_size=1, max_size=40))
def test_an_ipv6_zone_id_is_refused_whatever_it_holds(address, zone):
    for parser in (lambda v: _names.server_address(v, 'InternalIP'), _names.ip_address):
        with pytest.raises(_names.InvalidValue) as caught:
            parser('%s%%%s' % (address.compressed, zone))
        assert 'zone id' in str(caught.value) or 'not an IP address' in str(caught.value)
        assert '\n' not in str(caught.value)


@pytest.mark.parametrize('value', ['fe80::1%eth0', '::1:8080%x#', '::ffff:7f00:7:8080%lo#',
                                   'fe80::1%\nprogram p\n    command touch pwned\n#'])
def test_the_zone_ids_of_the_reported_attacks_are_refused(value):
    with pytest.raises(_names.InvalidValue, match='has an IPv6 zone id'):
        _names.ip_address(value, 'bind address')


@pytest.mark.parametrize('value', ['web\n', 'a b', 'web#1', 'Web', '-web', 'w' * 64, '', None, 7, 'we"b'])
def test_bad_service_names_are_refused_with_the_value_shown(value):
    with pytest.raises(_names.InvalidValue) as caught:
        _names.service_name(value)
    assert 'service name' in str(caught.value)


def test_newline_is_shown_escaped_in_the_reason():
    with pytest.raises(_names.InvalidValue) as caught:
        _names.namespace_name('ns\nbind :1')
    assert '\\n' in str(caught.value)
    assert '\n' not in str(caught.value)


@pytest.mark.parametrize('value', [0, 65536, -1, True, '80', 1.5, None])
def test_port_numbers_outside_the_range_are_refused(value):
    with pytest.raises(_names.InvalidValue):
        _names.port_number(value)


@pytest.mark.parametrize('value,ok', [
    ('http', True), ('', True), ('dns-tcp', True),
    # what the API server accepts (ValidateDNS1123Label), not the IANA rule of container ports
    ('8200-8080', True), ('80', True), ('a--b', True), ('http-metrics-api', True), ('p' * 63, True),
    ('p' * 64, False), ('HTTP', False), ('-http', False), ('http-', False), ('http_x', False),
    ('http.x', False), ('h\nbind', False), (80, False)])
def test_port_names_follow_the_api_servers_rule(value, ok):
    if ok:
        assert _names.port_name(value) == value
    else:
        with pytest.raises(_names.InvalidValue) as caught:
            _names.port_name(value)
        assert 'is not a DNS-1123 label' in str(caught.value)


def test_section_name_joins_namespace_service_and_port():
    assert _names.section_name('shop', 'web', 8080) == 'shop.web.8080'
    with pytest.raises(_names.InvalidValue):
        _names.section_name('shop', 'web\nlisten x', 80)


@pytest.mark.parametrize('value', ['999.1.1.1', '1.2.3.4', '1.2.3.08', '256.256.256.256', 'node.123'])
def test_a_dns_address_that_looks_like_an_ip_address_is_refused(value):
    with pytest.raises(_names.InvalidValue, match='looks like an IP address, not a DNS name'):
        _names.server_address(value, 'Hostname')
    assert _names.server_address('node-1.example.com', 'InternalDNS') == 'node-1.example.com'
