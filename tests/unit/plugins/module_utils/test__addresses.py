"""Addresses of LoadBalancer Services: pools, allocation, and what goes to their status."""

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _addresses, _model
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue

POOLS = [{'name': 'web', 'addresses': ['192.0.2.0/29']}, {'name': 'spare', 'addresses': ['192.0.2.100-192.0.2.101']}]


def lb(name, created='2026-01-01T00:00:00Z', ports=(80,), cls=_addresses.DEFAULT_CLASS, ip=None, annotations=None,
       ingress=None, manager=None, namespace='shop', families=('IPv4',)):
    return {'namespace': namespace, 'name': name, 'uid': 'uid-' + name, 'resource_version': '7', 'created': created,
            'type': 'LoadBalancer', 'load_balancer_class': cls, 'load_balancer_ip': ip, 'ip_families': list(families),
            'ports': [{'name': '', 'protocol': 'TCP', 'port': p, 'node_port': 30000 + p} for p in ports],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None,
            'annotations': dict(annotations or {}), 'ingress': list(ingress or []), 'status_manager': manager}


def allocate(services, pools=None):
    """As the model allocates: a service with an invalid annotation keeps what it holds, and asks for no more."""
    settings_of = dict(('%s/%s' % (s['namespace'], s['name']), _model._settings(s, 'portico.io/')) for s in services)
    pools = POOLS if pools is None else pools
    return _addresses.allocate(services, _addresses.address_pools(pools),
                               lambda s: settings_of['%s/%s' % (s['namespace'], s['name'])], 'portico.io/')


def node():
    return {'name': 'w1', 'labels': {}, 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']],
            'unschedulable': False, 'deleting': False, 'taints': []}


# pools ---------------------------------------------------------------------------------------

def test_a_cidr_leaves_out_its_network_and_broadcast_address_and_ranges_are_inclusive():
    entries = ['192.0.2.0/30', '192.0.2.8-192.0.2.9', '192.0.2.20', '2001:db8::/127']
    pools = _addresses.address_pools([{'name': 'a', 'addresses': entries}])
    assert [(str(f), str(l)) for f, l in pools[0]['ranges']] == [
        ('192.0.2.1', '192.0.2.2'), ('192.0.2.8', '192.0.2.9'), ('192.0.2.20', '192.0.2.20'),
        ('2001:db8::', '2001:db8::1')]


@pytest.mark.parametrize('pools, message', [
    ('192.0.2.0/24', 'must be a list'),
    ([{'name': 'a'}], 'address pool a: addresses must be a non-empty list'),
    ([{'name': 'A', 'addresses': ['192.0.2.1']}], "name 'A' is not a DNS-1123 label"),
    ([{'name': 'a', 'addresses': ['192.0.2.1'], 'auto': True}], 'with no other keys'),
    ([{'name': 'a', 'addresses': ['192.0.2.5/28']}], 'is not a CIDR (192.0.2.5/28 has host bits set)'),
    ([{'name': 'a', 'addresses': ['192.0.2.9-192.0.2.1']}], 'must run from a lower to a higher address'),
    ([{'name': 'a', 'addresses': ['192.0.2.1-2001:db8::1']}], 'of one family'),
    ([{'name': 'a', 'addresses': ['224.0.0.1']}], 'multicast'),
    ([{'name': 'a', 'addresses': ['web.example']}], "'web.example' is not an IP address"),
    ([{'name': 'a', 'addresses': ['fe80::1%eth0']}], 'zone id'),
    ([{'name': 'a', 'addresses': ['192.0.2.0/28']}, {'name': 'b', 'addresses': ['192.0.2.10-192.0.2.30']}],
     'address pool b: 192.0.2.10-192.0.2.30 overlaps pool a (192.0.2.1-192.0.2.14)'),
    ([{'name': 'a', 'addresses': ['192.0.2.1']}, {'name': 'a', 'addresses': ['192.0.2.2']}], 'listed twice'),
])
def test_bad_pools_are_refused_naming_the_pool_and_the_reason(pools, message):
    with pytest.raises(InvalidValue, match=None) as caught:
        _addresses.address_pools(pools)
    assert message in str(caught.value)


def test_the_class_must_be_a_qualified_name():
    assert _addresses.load_balancer_class(None) == 'portico.io/haproxy'
    assert _addresses.load_balancer_class('example.com/lb') == 'example.com/lb'
    for bad in ('haproxy', 'Example.com/x y', '/x', 'a/b/c'):
        with pytest.raises(InvalidValue):
            _addresses.load_balancer_class(bad)


# which Services Portico implements -------------------------------------------------------------

def test_only_its_class_or_no_class_when_it_is_the_default():
    options = {'load_balancer_class': 'portico.io/haproxy'}
    assert _addresses.implements(lb('a'), options)
    assert not _addresses.implements(lb('a', cls='metallb.io/metallb'), options)
    assert not _addresses.implements(lb('a', cls=None), options)
    assert _addresses.implements(lb('a', cls=None), dict(options, default_load_balancer=True))
    assert not _addresses.implements(dict(lb('a'), type='NodePort'), options)


# allocation ------------------------------------------------------------------------------------

def test_new_addresses_are_the_lowest_free_ones_in_age_order():
    assigned, refused, dummy = allocate([lb('young', '2026-03-01T00:00:00Z'), lb('old')])
    assert assigned == {'shop/old': {'address': '192.0.2.1', 'pool': 'web', 'how': 'the default pool'},
                        'shop/young': {'address': '192.0.2.2', 'pool': 'web', 'how': 'the default pool'}}
    assert refused == {}


def test_an_address_held_in_the_status_is_kept_and_never_given_to_another():
    held = lb('held', '2026-05-01T00:00:00Z', ingress=[{'ip': '192.0.2.1', 'ipMode': 'Proxy'}], manager='portico')
    assigned, refused, dummy = allocate([lb('old'), held])
    assert assigned['shop/held'] == {'address': '192.0.2.1', 'pool': 'web', 'how': 'held'}
    assert assigned['shop/old']['address'] == '192.0.2.2'


def test_an_older_service_cannot_take_an_address_another_holds_by_asking_for_it():
    victim = lb('web', '2026-05-01T00:00:00Z', ingress=[{'ip': '192.0.2.1'}], manager='portico')
    thief = lb('x', '2025-01-01T00:00:00Z', namespace='evil', annotations={'address': '192.0.2.1'})
    assigned, refused, dummy = allocate([victim, thief])
    assert assigned == {'shop/web': {'address': '192.0.2.1', 'pool': 'web', 'how': 'held'}}
    # the other tenant's service is not named to the thief
    assert refused == {'evil/x': 'annotation portico.io/address: address 192.0.2.1 is taken by a service in '
                                 'another namespace'}


def test_a_status_someone_else_wrote_chooses_no_address():
    planted = lb('planted', ingress=[{'ip': '192.0.2.5'}], manager='kubectl-edit')
    assigned, dummy, dummy = allocate([planted])
    assert assigned['shop/planted']['address'] == '192.0.2.1'


def test_a_sharing_key_is_one_namespace_s_own():
    web = lb('web', ports=(443,), ingress=[{'ip': '192.0.2.1'}], manager='portico', annotations={'allow-shared-ip': 'k'})
    other = lb('y', '2026-02-01T00:00:00Z', ports=(80,), namespace='evil', annotations={'allow-shared-ip': 'k'})
    same = lb('z', '2026-03-01T00:00:00Z', ports=(80,), annotations={'allow-shared-ip': 'k'})
    assigned, dummy, dummy = allocate([web, other, same])
    assert assigned['evil/y']['address'] == '192.0.2.2'
    assert assigned['shop/z']['address'] == '192.0.2.1'


def test_special_addresses_inside_a_wide_range_are_never_handed_out():
    pools = [{'name': 'wide', 'addresses': ['126.255.255.254-128.0.0.1', '223.255.255.255-240.0.0.1']},
             {'name': 'six', 'addresses': ['2001:db8::/64']}]
    services = [lb('a'), lb('b', '2026-02-01T00:00:00Z'), lb('c', '2026-03-01T00:00:00Z'), lb('m', ip='224.0.0.1'),
                lb('v6', annotations={'address-pool': 'six'}, families=('IPv6',))]
    assigned, refused, dummy = allocate(services, pools)
    # loopback is left out of a range that does not start on it; so is an IPv6 prefix's anycast address
    assert [assigned[k]['address'] for k in ('shop/a', 'shop/b', 'shop/c', 'shop/v6')] == [
        '126.255.255.254', '126.255.255.255', '128.0.0.0', '2001:db8::1']
    assert refused['shop/m'] == 'spec.loadBalancerIP: 224.0.0.1 is a multicast, unspecified, link-local or reserved address'


def test_a_key_joins_an_address_of_the_service_s_own_family_first():
    pools = [{'name': 'dual', 'addresses': ['192.0.2.8/30', '2001:db8::10-2001:db8::11']}]
    v4 = lb('a', ports=(80,), ip='192.0.2.9', annotations={'allow-shared-ip': 'k'})
    v6 = lb('b', '2026-02-01T00:00:00Z', ports=(80,), ip='2001:db8::10', annotations={'allow-shared-ip': 'k'})
    joiner = lb('c', '2026-03-01T00:00:00Z', ports=(443,), families=('IPv6',), annotations={'allow-shared-ip': 'k'})
    assigned, dummy, dummy = allocate([v4, v6, joiner], pools)
    assert assigned['shop/c']['address'] == '2001:db8::10'


def test_an_odd_status_written_by_anyone_never_breaks_the_model():
    odd = lb('odd', ingress=[{}, {'hostname': 'x' * 300}, {'ip': 7}], manager='portico', cls='other.io/x')
    model = _model.build_model([node()], [odd, lb('web')], {'address_pools': POOLS})
    [entry] = [e for e in model['load_balancers'] if e['service'] == 'shop/odd']
    assert entry['write'] and entry['event']['note'].startswith("released None, 'xxxxxxxx")


def test_a_held_address_outside_every_pool_is_replaced():
    moved = lb('moved', ingress=[{'ip': '198.51.100.7'}])
    assigned, dummy, dummy = allocate([moved])
    assert assigned['shop/moved']['address'] == '192.0.2.1'


def test_two_services_asking_for_one_address_the_older_keeps_it():
    older = lb('older', ip='192.0.2.5')
    younger = lb('younger', '2026-02-01T00:00:00Z', annotations={'address': '192.0.2.5'})
    assigned, refused, dummy = allocate([younger, older])
    assert assigned == {'shop/older': {'address': '192.0.2.5', 'pool': 'web', 'how': 'spec.loadBalancerIP'}}
    assert refused == {'shop/younger': 'annotation portico.io/address: address 192.0.2.5 is taken by service '
                                       'shop/older'}


def test_a_held_address_asked_for_by_an_older_service_goes_to_it():
    holder = lb('holder', '2026-02-01T00:00:00Z', ingress=[{'ip': '192.0.2.5'}])
    asker = lb('asker', ip='192.0.2.5')
    assigned, refused, dummy = allocate([holder, asker])
    assert assigned['shop/asker']['address'] == '192.0.2.5'
    assert assigned['shop/holder']['address'] == '192.0.2.1'


def test_services_with_one_sharing_key_share_an_address_when_their_ports_do_not_clash():
    web = lb('web', ports=(80,), ip='192.0.2.1', annotations={'allow-shared-ip': 'front'})
    tls = lb('tls', '2026-02-01T00:00:00Z', ports=(443,), annotations={'allow-shared-ip': 'front'})
    clash = lb('clash', '2026-03-01T00:00:00Z', ports=(80,), ip='192.0.2.1', annotations={'allow-shared-ip': 'front'})
    other = lb('other', '2026-04-01T00:00:00Z', ports=(22,), ip='192.0.2.1', annotations={'allow-shared-ip': 'back'})
    later = lb('later', '2026-05-01T00:00:00Z', ports=(22,), annotations={'allow-shared-ip': 'front'})
    assigned, refused, dummy = allocate([web, tls, clash, other, later])
    # tls asks for no address: it joins the one its key already uses, where port 443 is free
    assert assigned['shop/web']['address'] == assigned['shop/tls']['address'] == '192.0.2.1'
    assert assigned['shop/later']['address'] == '192.0.2.1'
    assert refused == {
        'shop/clash': 'spec.loadBalancerIP: address 192.0.2.1 is shared (key front) with service shop/web, '
                      'which also uses port 80/TCP',
        'shop/other': 'spec.loadBalancerIP: address 192.0.2.1 is taken by service shop/web'}


def test_every_refusal_says_why():
    spare = [lb('s%d' % i, '2026-02-%02dT00:00:00Z' % (i + 1), annotations={'address-pool': 'spare'}) for i in range(3)]
    services = [lb('nowhere', ip='198.51.100.1'), lb('nopool', annotations={'address-pool': 'gold'}),
                lb('bad', ip='not-an-ip')] + spare
    assigned, refused, dummy = allocate(services)
    assert refused == {
        'shop/nowhere': 'spec.loadBalancerIP 198.51.100.1 is in no address pool (pools: web, spare)',
        'shop/nopool': 'annotation portico.io/address-pool names pool gold, which is not configured (pools: web, spare)',
        'shop/bad': "spec.loadBalancerIP 'not-an-ip' is not an IP address",
        'shop/s2': 'address pool spare has no free address'}
    assert [assigned['shop/s%d' % i]['address'] for i in range(2)] == ['192.0.2.100', '192.0.2.101']


def test_no_pool_refuses_every_implemented_service():
    dummy, refused, dummy = allocate([lb('a')], pools=[])
    assert refused == {'shop/a': 'no address pool is configured (option address_pools)'}


def test_an_ipv6_service_takes_an_ipv6_address_of_a_dual_family_pool():
    pools = [{'name': 'dual', 'addresses': ['192.0.2.8/30', '2001:db8::10-2001:db8::11']}]
    assigned, dummy, dummy = allocate([lb('v6', families=('IPv6', 'IPv4')), lb('v4')], pools)
    assert assigned['shop/v6']['address'] == '2001:db8::10'
    assert assigned['shop/v4']['address'] == '192.0.2.9'


def test_a_lower_request_is_ignored_with_a_warning():
    dummy, dummy, warnings = allocate([lb('a', ip='192.0.2.3', annotations={'address-pool': 'spare'})])
    assert warnings == [('shop/a', 'annotation portico.io/address-pool ignored: spec.loadBalancerIP is set')]


# properties ------------------------------------------------------------------------------------

addresses = st.sampled_from(['192.0.2.1', '192.0.2.2', '192.0.2.6', '192.0.2.100', '198.51.100.1', '2001:db8::1', 'x'])


@st.composite
def lb_services(draw):
    count = draw(st.integers(0, 9))
    services = []
    for index in range(count):
        annotations = {}
        if draw(st.booleans()):
            annotations['allow-shared-ip'] = draw(st.sampled_from(['k1', 'k2']))
        choice = draw(st.sampled_from(['none', 'ip', 'address', 'pool']))
        ip = draw(addresses) if choice == 'ip' else None
        if choice == 'address':
            annotations['address'] = draw(addresses)
        if choice == 'pool':
            annotations['address-pool'] = draw(st.sampled_from(['web', 'spare', 'gold']))
        ingress = [{'ip': draw(addresses)}] if draw(st.booleans()) else []
        services.append(lb('s%d' % index, draw(st.sampled_from(['2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z'])),
                           ports=draw(st.lists(st.sampled_from([80, 443, 22]), min_size=1, max_size=2, unique=True)),
                           ip=ip, annotations=annotations, ingress=ingress,
                           namespace=draw(st.sampled_from(['a', 'b']))))
    return services


@settings(max_examples=300)
@given(lb_services(), st.randoms())
def test_allocation_does_not_depend_on_input_order(services, rnd):
    first = allocate(services)
    shuffled = list(services)
    rnd.shuffle(shuffled)
    assert allocate(shuffled)[:2] == first[:2]


@settings(max_examples=300)
@given(lb_services())
def test_an_address_has_one_owner_unless_shared_by_key_without_a_port_clash(services):
    assigned, refused, dummy = allocate(services)
    by_id = dict(('%s/%s' % (s['namespace'], s['name']), s) for s in services)
    assert set(assigned) | set(refused) == set(by_id) and not set(assigned) & set(refused)
    assert all(refused.values())
    owners = {}
    for service_id, given in assigned.items():
        owners.setdefault(given['address'], []).append(by_id[service_id])
        address = ipaddress.ip_address(given['address'])
        assert _addresses.pool_of(address, _addresses.address_pools(POOLS)) == given['pool']
    for holders in owners.values():
        if len(holders) > 1:
            keys = set(h['annotations'].get('allow-shared-ip') for h in holders)
            assert len(keys) == 1 and None not in keys
            ports = [(p['port'], p['protocol']) for h in holders for p in h['ports']]
            assert len(ports) == len(set(ports))


@settings(max_examples=300)
@given(lb_services())
def test_once_written_to_the_status_the_next_run_keeps_every_address(services):
    assigned, refused, dummy = allocate(services)
    written = [dict(s, ingress=[{'ip': assigned[k]['address']}] if k in assigned else [], status_manager='portico')
               for k, s in (('%s/%s' % (s['namespace'], s['name']), s) for s in services)]
    again, dummy, dummy = allocate(written)
    assert dict((k, v['address']) for k, v in again.items()) == dict((k, v['address']) for k, v in assigned.items())


# what goes to the status ---------------------------------------------------------------------

def test_the_model_binds_each_service_on_its_own_address_and_both_serve_port_80():
    options = {'address_pools': POOLS}
    model = _model.build_model([node()], [lb('a'), lb('b', '2026-02-01T00:00:00Z')], options)
    assert [(f['name'], f['bind_address'], f['port']) for f in model['frontends']] == [
        ('shop.a.80', '192.0.2.1', 80), ('shop.b.80', '192.0.2.2', 80)]
    assert [(e['service'], e['ingress'], e['event']['reason']) for e in model['load_balancers']] == [
        ('shop/a', [{'ip': '192.0.2.1', 'ipMode': 'Proxy', 'ports': [{'port': 80, 'protocol': 'TCP'}]}], 'AddressAssigned'),
        ('shop/b', [{'ip': '192.0.2.2', 'ipMode': 'Proxy', 'ports': [{'port': 80, 'protocol': 'TCP'}]}], 'AddressAssigned')]
    assert all(e['write'] for e in model['load_balancers']) and model['excluded_services'] == []


def test_a_status_already_right_is_not_written_again_and_tells_nothing():
    status = [{'ip': '192.0.2.1', 'ipMode': 'Proxy', 'ports': [{'port': 80, 'protocol': 'TCP'}]}]
    model = _model.build_model([node()], [lb('a', ingress=status, manager='portico')], {'address_pools': POOLS})
    assert [(e['write'], e['event']) for e in model['load_balancers']] == [(False, None)]


def test_a_service_that_is_not_served_for_a_while_keeps_its_address_and_is_warned():
    status = [{'ip': '192.0.2.3', 'ipMode': 'Proxy', 'ports': [{'port': 80, 'protocol': 'TCP'}]}]
    typo = lb('web', ingress=status, manager='portico', annotations={'mode': 'htp'})
    newcomer = lb('new', '2026-02-01T00:00:00Z')
    model = _model.build_model([node()], [typo, newcomer], {'address_pools': POOLS})
    entries = dict((e['service'], e) for e in model['load_balancers'])
    assert entries['shop/web']['write'] is False and entries['shop/web']['address'] == '192.0.2.3'
    assert entries['shop/web']['event']['type'] == 'Warning'
    assert entries['shop/web']['event']['note'].startswith('192.0.2.3 is kept but not served: invalid: annotation '
                                                           'portico.io/mode')
    assert entries['shop/new']['address'] == '192.0.2.1'
    # only annotation expose=false gives the address up
    gone = _model.build_model([node()], [dict(typo, annotations={'expose': 'false'})], {'address_pools': POOLS})
    assert gone['load_balancers'][0]['ingress'] == [] and gone['load_balancers'][0]['write']


def test_other_load_balancers_share_the_ports_as_before_and_get_no_status():
    metallb = lb('m', cls='metallb.io/metallb', ingress=[{'ip': '203.0.113.5'}], manager='metallb')
    model = _model.build_model([node()], [metallb, lb('own', '2026-02-01T00:00:00Z')], {'address_pools': POOLS})
    assert [(f['name'], f['bind_address']) for f in model['frontends']] == [('shop.m.80', None), ('shop.own.80', '192.0.2.1')]
    assert [e['service'] for e in model['load_balancers']] == ['shop/own']


def test_a_service_that_leaves_the_class_has_the_status_portico_wrote_removed():
    status = [{'ip': '192.0.2.1', 'ipMode': 'Proxy', 'ports': [{'port': 80, 'protocol': 'TCP'}]}]
    gone = dict(lb('gone', ingress=status, manager='portico'), type='NodePort', load_balancer_class=None)
    theirs = dict(lb('theirs', ingress=status, manager='other-controller'), load_balancer_class='other.io/lb')
    model = _model.build_model([node()], [gone, theirs], {'address_pools': POOLS})
    assert [(e['service'], e['ingress'], e['write'], e['event']) for e in model['load_balancers']] == [
        ('shop/gone', [], True, {'reason': 'AddressReleased', 'type': 'Normal', 'note': 'released 192.0.2.1',
                                 'key': None})]


def test_a_refused_service_is_excluded_and_a_warning_event_says_why():
    model = _model.build_model([node()], [lb('far', ip='198.51.100.1')], {'address_pools': POOLS})
    assert model['excluded_services'] == [{'service': 'shop/far', 'port': None, 'reason':
                                           'no address: spec.loadBalancerIP 198.51.100.1 is in no address pool '
                                           '(pools: web, spare)'}]
    assert [(e['write'], e['event']['type'], e['event']['note']) for e in model['load_balancers']] == [
        (False, 'Warning', 'no address: spec.loadBalancerIP 198.51.100.1 is in no address pool (pools: web, spare)')]


def test_a_shared_port_service_may_not_bind_an_address_of_a_pool():
    squatter = dict(lb('squat', cls=None, annotations={'bind-address': '192.0.2.1'}), type='NodePort')
    model = _model.build_model([node()], [squatter], {'address_pools': POOLS})
    assert model['frontends'] == []
    assert 'is in address pool web' in model['excluded_services'][0]['reason']


def test_frontend_port_and_bind_address_annotations_are_ignored_on_an_own_address():
    model = _model.build_model([node()], [lb('a', annotations={'frontend-port': '8080', 'bind-address': '10.1.1.1'})],
                               {'address_pools': POOLS, 'frontend_port': 'node_port'})
    assert [(f['bind_address'], f['port']) for f in model['frontends']] == [('192.0.2.1', 80)]
    assert len(model['warnings']) == 2


def test_a_reserved_port_is_refused_on_an_own_address_too():
    options = {'address_pools': POOLS, 'reserved_ports': [8404], 'port_conflict': 'allocate'}
    model = _model.build_model([node()], [lb('a', ports=(80, 8404))], options)
    assert [f['port'] for f in model['frontends']] == [80]
    assert model['load_balancers'][0]['ingress'][0]['ports'] == [{'port': 80, 'protocol': 'TCP'}]
    assert model['excluded_services'][0]['reason'] == 'frontend port 8404 is reserved by the base configuration'


@settings(max_examples=200)
@given(lb_services())
def test_no_two_frontends_bind_one_address_and_port(services):
    model = _model.build_model([node()], services, {'address_pools': POOLS})
    places = [(f['bind_address'], f['port']) for f in model['frontends']]
    assert len(places) == len(set(places))
    names = [f['name'] for f in model['frontends']]
    assert len(names) == len(set(names))
    served = dict((e['service'], e['address']) for e in model['load_balancers'] if e['address'])
    for frontend in model['frontends']:
        assert frontend['bind_address'] == served[frontend['service']]


def test_a_creation_time_that_is_not_text_counts_as_missing():
    assigned, refused, warnings = allocate([lb('odd', created=1700000000), lb('dated'), lb('none', created=None)])
    assert sorted(assigned) == ['shop/dated', 'shop/none', 'shop/odd']
    # the dated one is the oldest and gets the lowest address
    assert assigned['shop/dated']['address'] == min((a['address'] for a in assigned.values()),
                                                    key=lambda text: tuple(int(part) for part in text.split('.')))


_EDGES = ['0.0.0.0', '126.255.255.250', '127.255.255.250', '169.253.255.250', '169.254.255.250', '223.255.255.250',
          '255.255.255.240', '::', 'fe7f:ffff:ffff:ffff:ffff:ffff:ffff:fff0', 'febf:ffff:ffff:ffff:ffff:ffff:ffff:fff0',
          'feff:ffff:ffff:ffff:ffff:ffff:ffff:fff0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0']


@given(st.sampled_from(_EDGES), st.integers(0, 12), st.integers(0, 30), st.sets(st.integers(0, 40), max_size=8),
       st.integers(1, 6))
def test_walking_past_special_networks_finds_what_a_scan_of_every_address_finds(edge, start, length, held, wanted):
    """lowest_free jumps over a whole special network at once; it must find the same addresses, in the same
    order, as looking at every address of the range one by one."""
    base = ipaddress.ip_address(edge)
    top = 2 ** base.max_prefixlen - 1
    first = ipaddress.ip_address(min(int(base) + start, top))
    last = ipaddress.ip_address(min(int(first) + length, top))
    claims = _addresses._Claims([])
    for offset in held:
        if int(first) + offset <= int(last):
            claims.take(ipaddress.ip_address(int(first) + offset), 'x/y', None, [])
    taken = set(claims.holders)
    expected = [a for a in (ipaddress.ip_address(n) for n in range(int(first), int(last) + 1))
                if a not in taken and _addresses.unusable(a, first) is None][:wanted]
    found = []
    for dummy in range(wanted):
        address = claims.lowest_free('p', [(0, (first, last))])
        if address is None:
            break
        found.append(address)
        claims.take(address, 'new/%d' % len(found), None, [])
    assert found == expected
