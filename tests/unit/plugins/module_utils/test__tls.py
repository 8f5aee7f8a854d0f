"""TLS Secrets: what is accepted, what is refused and why, and that keys stay out of the model."""

import base64
import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.portico.k8s.plugins.module_utils import _client, _cluster, _collect, _model, _tls
from ansible_collections.portico.k8s.plugins.module_utils._names import InvalidValue
from tests.fakeapi import objects
from tests.support import tls

NODE = {'name': 'n1', 'ready': 'True', 'addresses': [['InternalIP', '10.0.0.1']], 'labels': {}, 'taints': [],
        'unschedulable': False, 'deleting': False}


@pytest.fixture(scope='module')
def shop_cert():
    return tls.certificate(['shop.example.com', '*.shop.example.com'], chain=True)


def secret(cert, key, name='web-tls', namespace='shop', **kwargs):
    return objects.tls_secret(name, namespace, cert_pem=cert, key_pem=key, **kwargs)


def refusal(obj):
    with pytest.raises(InvalidValue) as caught:
        _tls.read_tls_secret(obj)
    return str(caught.value)


@pytest.mark.parametrize('kind', ['ec', 'rsa'])
def test_a_good_secret_gives_a_bundle_and_public_facts(kind):
    cert, key, leaf = tls.certificate(['shop.example.com', 'www.shop.example.com'], kind=kind)
    bundle, facts = _tls.read_tls_secret(secret(cert, key))
    assert bundle.count(b'BEGIN CERTIFICATE') == 1 and b'BEGIN PRIVATE KEY' in bundle
    assert facts['secret'] == 'shop/web-tls' and re.match(r'\Ashop_web-tls\.[0-9a-f]{12}\.pem\Z', facts['file'])
    assert facts['names'] == ['shop.example.com', 'www.shop.example.com']
    assert facts['expired'] is False and len(facts['fingerprint']) == 64
    # nothing secret in the facts
    assert b'PRIVATE' not in json.dumps(facts).encode() and key.split(b'\n')[1].decode() not in json.dumps(facts)


def test_the_chain_is_kept_in_order(shop_cert):
    cert, key, leaf = shop_cert
    bundle, facts = _tls.read_tls_secret(secret(cert, key))
    assert bundle.count(b'BEGIN CERTIFICATE') == 2
    assert bundle.startswith(cert.split(b'-----END CERTIFICATE-----')[0])


def test_an_expired_certificate_is_flagged():
    cert, key, leaf = tls.certificate(['old.example.com'], days=-2)
    assert _tls.read_tls_secret(secret(cert, key))[1]['expired'] is True


def test_a_certificate_not_valid_yet_is_flagged_and_served_with_a_warning():
    cert, key, leaf = tls.certificate(['new.example.com'], days=400, valid_in=2)
    found = _tls.read_tls_secret(secret(cert, key, name='a-tls'))[1]
    assert found['not_yet_valid'] is True and found['expired'] is False
    assert found['not_before'] == leaf.not_valid_before_utc.strftime('%Y-%m-%dT%H:%M:%SZ')
    assert _tls.read_tls_secret(secret(*tls.certificate(['now.example.com'])[:2]))[1]['not_yet_valid'] is False
    model = build([service('a', 443, tls_secret='a-tls')], {**SECRETS, ('shop', 'a-tls'): found})
    assert model['frontends'][0]['tls']
    assert [w['reason'] for w in model['warnings']] == [
        'the certificate of Secret shop/a-tls is not valid before %s: clients refuse it until then' % found['not_before']]


def test_refusals_name_the_secret_and_the_reason(shop_cert):
    cert, key, leaf = shop_cert
    other_cert, other_key, dummy = tls.certificate(['other.example.com'])
    assert refusal(objects.secret('web-tls', 'shop', data={'tls.crt': cert, 'tls.key': key})) == \
        "Secret shop/web-tls is of type 'Opaque', not kubernetes.io/tls"
    assert refusal(secret(cert, other_key)) == \
        'Secret shop/web-tls: tls.key does not belong to the first certificate of tls.crt'
    assert refusal(secret(cert, b'')) == 'Secret shop/web-tls has no tls.key'
    assert refusal(secret(b'hello', key)) == 'Secret shop/web-tls: tls.crt holds no PEM certificate'
    assert refusal(secret(cert, b'-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')).startswith(
        'Secret shop/web-tls: tls.key is not a PEM private key')
    assert refusal(secret(cert, tls.key_pem(tls.private_key(), password=b'pw'))) == \
        'Secret shop/web-tls: tls.key is encrypted; HAProxy needs an unencrypted key'
    ed_cert, ed_key, dummy = tls.certificate(['ed.example.com'], kind='ed25519')
    assert 'HAProxy serves RSA and ECDSA keys' in refusal(secret(ed_cert, ed_key))
    weak_cert, weak_key, dummy = tls.certificate(['weak.example.com'], kind='rsa-1024')
    assert refusal(secret(weak_cert, weak_key)) == \
        'Secret shop/web-tls: tls.key is an RSA key of 1024 bits; HAProxy needs 2048 to 8192'
    k1_cert, k1_key, dummy = tls.certificate(['k1.example.com'], kind='ec-k1')
    assert refusal(secret(k1_cert, k1_key)) == \
        'Secret shop/web-tls: tls.key is on curve secp256k1; use one of secp256r1, secp384r1, secp521r1'
    broken = secret(cert, key)
    broken['data']['tls.crt'] = 'not base64!'
    assert refusal(broken) == 'Secret shop/web-tls: tls.crt is not base64'


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300), st.sampled_from(['kubernetes.io/tls', 'Opaque', None]))
def test_any_bytes_are_refused_with_a_reason_never_a_crash(crt, key, kind):
    obj = {'metadata': {'namespace': 'shop', 'name': 'x'}, 'type': kind,
           'data': {'tls.crt': base64.b64encode(crt).decode(), 'tls.key': base64.b64encode(key).decode()}}
    with pytest.raises(InvalidValue) as caught:
        _tls.read_tls_secret(obj)
    assert str(caught.value).startswith('Secret shop/x')


def test_anything_the_library_cannot_handle_is_a_refusal_not_a_crash(shop_cert, monkeypatch):
    cert, key, leaf = shop_cert

    def explode(certificate, secret_id):
        raise ValueError('error parsing asn1 value: ' + key.decode())
    monkeypatch.setattr(_tls, 'certificate_names', explode)
    message = refusal(secret(cert, key))
    assert message == 'Secret shop/web-tls cannot be read as a certificate and key (ValueError)'


def test_a_renewed_secret_is_a_new_file(shop_cert):
    cert, key, leaf = shop_cert
    renewed_cert, renewed_key, dummy = tls.certificate(['shop.example.com'])
    first = _tls.read_tls_secret(secret(cert, key))[1]['file']
    assert first == _tls.read_tls_secret(secret(cert, key))[1]['file']
    assert first != _tls.read_tls_secret(secret(renewed_cert, renewed_key))[1]['file']


def test_host_names_match_like_tls_does():
    names = ['shop.example.com', '*.apps.example.com']
    assert _tls.name_matches('shop.example.com', names)
    assert _tls.name_matches('a.apps.example.com', names)
    assert _tls.name_matches('*.apps.example.com', names)
    assert not _tls.name_matches('a.b.apps.example.com', names)
    assert not _tls.name_matches('apps.example.com', names)


# ---------------------------------------------------------------- the model

def service(name, port, created='2026-01-01T00:00:00Z', namespace='shop', **annotations):
    return {'namespace': namespace, 'name': name, 'created': created, 'type': 'NodePort',
            'ports': [{'name': 'web', 'protocol': 'TCP', 'port': port, 'node_port': 30000 + port % 1000}],
            'external_traffic_policy': 'Cluster', 'health_check_node_port': None,
            'annotations': dict((k.replace('_', '-'), v) for k, v in annotations.items())}


def facts(namespace, name, names, expired=False):
    return {'secret': '%s/%s' % (namespace, name), 'file': _tls.certificate_file(namespace, name, '0' * 12), 'names': names,
            'not_after': '2030-01-01T00:00:00Z', 'expired': expired, 'fingerprint': 'f' * 64}


SECRETS = {('shop', 'a-tls'): facts('shop', 'a-tls', ['a.example.com']),
           ('shop', 'b-tls'): facts('shop', 'b-tls', ['*.example.com']),
           ('shop', 'bad'): {'error': 'Secret shop/bad: tls.key is encrypted; HAProxy needs an unencrypted key'}}


def build(services, secrets=None, **options):
    return _model.build_model([NODE], services, options, {'kind': 'api', 'server': 'x'}, [], secrets or SECRETS)


def test_a_terminated_service_binds_its_certificate():
    model = build([service('a', 443, tls_secret='a-tls', mode='http')])
    assert model['frontends'][0]['tls'] == {'certificates': ['shop_a-tls.000000000000.pem']}
    assert model['certificates'] == [SECRETS[('shop', 'a-tls')]]
    assert model['summary']['certificates'] == 1


def test_a_missing_or_bad_secret_excludes_only_that_service():
    model = build([service('a', 443, tls_secret='gone'), service('b', 444, tls_secret='bad'), service('c', 445)])
    assert [f['service'] for f in model['frontends']] == ['shop/c']
    assert model['excluded_services'] == [
        {'service': 'shop/a', 'port': None, 'reason': 'annotation portico.io/tls-secret: Secret shop/gone not found'},
        {'service': 'shop/b', 'port': None, 'reason': 'annotation portico.io/tls-secret: Secret shop/bad: tls.key '
                                                      'is encrypted; HAProxy needs an unencrypted key'}]
    assert model['certificates'] == []


def test_a_secret_is_looked_up_in_the_services_own_namespace():
    model = build([service('a', 443, namespace='blog', tls_secret='a-tls')])
    assert model['frontends'] == []
    assert 'Secret blog/a-tls not found' in model['excluded_services'][0]['reason']


def test_terminated_services_with_hosts_share_a_port_and_pick_certificates_by_sni():
    model = build([service('a', 443, mode='http', hosts='a.example.com', tls_secret='a-tls'),
                   service('b', 443, '2026-01-02T00:00:00Z', mode='http', hosts='b.example.com', tls_secret='b-tls')])
    frontend, = model['frontends']
    assert frontend['name'] == 'hosts.443' and frontend['route_by'] == 'host'
    assert frontend['tls'] == {'certificates': ['shop_a-tls.000000000000.pem', 'shop_b-tls.000000000000.pem']}
    assert [r['backend'] for r in frontend['routes']] == ['shop.a.443', 'shop.b.443']
    assert [c['file'] for c in model['certificates']] == ['shop_a-tls.000000000000.pem', 'shop_b-tls.000000000000.pem']


def test_a_younger_certificate_never_competes_for_an_older_services_host():
    secrets = dict(SECRETS)
    secrets[('shop', 'thief')] = facts('shop', 'thief', ['a.example.com', 'c.example.com'])
    secrets[('shop', 'wild')] = facts('shop', 'wild', ['*.example.com'])
    secrets[('shop', 'exact-a')] = facts('shop', 'exact-a', ['a.example.com'])
    older = service('a', 443, mode='http', hosts='a.example.com', tls_secret='a-tls')
    # names a.example.com exactly, like the owner's certificate: HAProxy could pick either
    thief = service('c', 443, '2026-01-02T00:00:00Z', mode='http', hosts='c.example.com', tls_secret='thief')
    model = build([older, thief], secrets)
    assert [f['tls']['certificates'] for f in model['frontends']] == [['shop_a-tls.000000000000.pem']]
    assert model['excluded_services'][0]['reason'] == (
        'annotation portico.io/tls-secret: the certificate of Secret shop/thief also names host a.example.com, '
        'which port 443 routes to the older service shop/a')
    # a wildcard loses to the owner's exact name: no conflict
    fine = service('w', 443, '2026-01-02T00:00:00Z', mode='http', hosts='w.example.com', tls_secret='wild')
    assert build([older, fine], secrets)['excluded_services'] == []
    # the older wildcard would be chosen for the younger's host if its certificate does not name it
    younger = service('z', 443, '2026-01-03T00:00:00Z', mode='http', hosts='z.example.com', tls_secret='exact-a')
    model = build([service('w', 443, mode='http', hosts='w.example.com', tls_secret='wild'), younger], secrets)
    assert 'for host z.example.com on port 443 HAProxy would serve the certificate of the older service shop/w' in \
        model['excluded_services'][0]['reason']
    # two services of one namespace sharing one Secret are fine
    same = service('b', 443, '2026-01-02T00:00:00Z', mode='http', hosts='a2.example.com', tls_secret='a-tls')
    assert build([older, same])['excluded_services'] == []


def test_terminated_tcp_services_are_routed_by_sni():
    model = build([service('a', 443, hosts='a.example.com', tls_secret='a-tls'),
                   service('b', 443, '2026-01-02T00:00:00Z', hosts='b.example.com', tls_secret='b-tls')])
    frontend, = model['frontends']
    assert frontend['name'] == 'sni.443' and frontend['route_by'] == 'sni' and frontend['tls']


def test_passthrough_and_terminated_services_never_share_a_port():
    model = build([service('pass', 443, hosts='p.example.com'),
                   service('term', 443, '2026-01-02T00:00:00Z', hosts='a.example.com', tls_secret='a-tls')])
    assert [f['name'] for f in model['frontends']] == ['sni.443']
    assert model['excluded_services'][0]['reason'] == 'frontend port 443 is already taken by the older service shop/pass'
    assert model['certificates'] == []


def test_a_host_the_certificate_does_not_name_is_a_warning():
    model = build([service('a', 443, mode='http', hosts='a.example.com,z.other.org', tls_secret='a-tls')])
    assert [w['reason'] for w in model['warnings']] == ['the certificate of Secret shop/a-tls does not name host z.other.org']


def test_an_expired_certificate_is_served_with_a_warning():
    old = {**SECRETS, ('shop', 'a-tls'): facts('shop', 'a-tls', ['a.example.com'], expired=True)}
    model = build([service('a', 443, tls_secret='a-tls')], old)
    assert model['frontends'][0]['tls'] and 'expired on 2030-01-01T00:00:00Z' in model['warnings'][0]['reason']


def test_a_redirect_port_of_its_own():
    model = build([service('a', 443, mode='http', tls_secret='a-tls', tls_redirect_port='80')])
    assert [(f['name'], f['port'], f['mode'], f['redirect_port'], f['tls']) for f in model['frontends']] == [
        ('redirect.80', 80, 'http', 443, None), ('shop.a.443', 443, 'http', None, {'certificates': ['shop_a-tls.000000000000.pem']})]
    assert len(model['backends']) == 1


def test_redirect_routes_share_port_80_with_plain_http_services():
    model = build([service('a', 443, mode='http', hosts='a.example.com', tls_secret='a-tls', tls_redirect_port='80'),
                   service('plain', 80, '2026-01-02T00:00:00Z', mode='http', hosts='plain.example.com')])
    http = model['frontends'][0]
    assert http['name'] == 'hosts.80'
    assert [(r['host'], r['backend'], r['redirect_port']) for r in http['routes']] == [
        ('plain.example.com', 'shop.plain.80', None), ('a.example.com', None, 443)]


def test_a_redirect_whose_port_is_taken_is_dropped_with_a_warning():
    younger = service('a', 443, '2026-01-02T00:00:00Z', mode='http', tls_secret='a-tls', tls_redirect_port='80')
    model = build([service('tcp', 80), younger], port_conflict='allocate')
    assert [f['name'] for f in model['frontends']] == ['shop.tcp.80', 'shop.a.443']
    assert model['warnings'] == [{'service': 'shop/a', 'port': '443/TCP', 'reason': 'no redirect to HTTPS: frontend '
                                  'port 80 is already taken by the service shop/tcp'}]


def test_a_redirect_follows_an_allocated_tls_port():
    model = build([service('first', 443), service('a', 443, '2026-01-02T00:00:00Z', mode='http', tls_secret='a-tls',
                                                  tls_redirect_port='80')],
                  port_conflict='allocate', allocate_range='20000-20000')
    assert [(f['name'], f['redirect_port']) for f in model['frontends']] == [
        ('redirect.80', 20000), ('shop.first.443', None), ('shop.a.443', None)]


# ---------------------------------------------------------------- reading Secrets

def test_secrets_are_read_by_name_and_checked(fakeapi, shop_cert, tmp_path):
    cert, key, leaf = shop_cert
    fakeapi.load_list(objects.cluster_list([
        objects.node('node-1', internal_ips='10.0.0.1'),
        objects.service('web', 'shop', type='NodePort', ports=[443], annotations={'portico.io/tls-secret': 'web-tls'}),
        objects.service('api', 'shop', type='NodePort', ports=[444], annotations={'portico.io/tls-secret': 'nope'}),
        objects.service('bad', 'shop', type='NodePort', ports=[445], annotations={'portico.io/tls-secret': 'Bad Name'}),
        secret(cert, key), objects.secret('other', 'shop', data={'password': 'hunter2'}),
    ]))
    options = {'host': fakeapi.url, 'api_key': fakeapi.token, 'ca_cert': str(fakeapi.ca_path),
               'address_types': ['InternalIP']}
    model, bundles = _collect.collect(options.get)
    assert [f['service'] for f in model['frontends']] == ['shop/web']
    reasons = {e['service']: e['reason'] for e in model['excluded_services']}
    assert reasons['shop/api'] == 'annotation portico.io/tls-secret: Secret shop/nope not found'
    assert reasons['shop/bad'].startswith("invalid: annotation portico.io/tls-secret: 'Bad Name' is not a Secret name")
    # one GET per valid name, never a list of Secrets
    asked = sorted(r.path for r in fakeapi.requests if '/secrets' in r.path)
    assert asked == ['/api/v1/namespaces/shop/secrets/nope', '/api/v1/namespaces/shop/secrets/web-tls']
    bundle, facts = _tls.read_tls_secret(secret(cert, key))
    # the bundle comes back beside the model, never in it, and nothing is written anywhere
    assert bundles == {facts['file']: bundle}
    assert b'PRIVATE KEY' not in json.dumps(model).encode()
    assert list(tmp_path.iterdir()) == []


def test_a_forbidden_secret_excludes_its_service_and_the_run_goes_on(fakeapi, shop_cert):
    cert, key, leaf = shop_cert
    fakeapi.load_list(objects.cluster_list([
        objects.node('node-1', internal_ips='10.0.0.1'),
        objects.service('web', 'shop', type='NodePort', ports=[443], annotations={'portico.io/tls-secret': 'web-tls'}),
        objects.service('plain', 'shop', type='NodePort', ports=[80]),
        secret(cert, key),
    ]))
    fakeapi.add_token('narrow', 'system:serviceaccount:portico:reader', forbidden={'secrets'})
    options = {'host': fakeapi.url, 'api_key': 'narrow', 'ca_cert': str(fakeapi.ca_path), 'address_types': ['InternalIP']}
    model = _collect.collect_model(options.get)
    assert [f['service'] for f in model['frontends']] == ['shop/plain']
    assert model['excluded_services'][0]['reason'] == (
        'annotation portico.io/tls-secret: permission denied reading Secret shop/web-tls (403 Forbidden): '
        'the account needs "get" on secrets in namespace shop')


def test_other_failures_reading_a_secret_stop_the_run(fakeapi, shop_cert):
    cert, key, leaf = shop_cert
    fakeapi.load_list(objects.cluster_list([
        objects.node('node-1', internal_ips='10.0.0.1'),
        objects.service('web', 'shop', type='NodePort', ports=[443], annotations={'portico.io/tls-secret': 'web-tls'}),
        secret(cert, key),
    ]))
    fakeapi.fault('/api/v1/namespaces/shop/secrets/web-tls', status=500)
    options = {'host': fakeapi.url, 'api_key': fakeapi.token, 'ca_cert': str(fakeapi.ca_path), 'address_types': ['InternalIP']}
    with pytest.raises(_client.KubeError) as caught:
        _collect.collect_model(options.get)
    assert str(caught.value).startswith('reading Secret shop/web-tls: the API server answered 500')


def test_a_snapshot_can_carry_the_secrets(tmp_path, shop_cert):
    cert, key, leaf = shop_cert
    path = tmp_path / 'cluster.json'
    path.write_text(json.dumps(objects.cluster_list([
        objects.node('node-1', internal_ips='10.0.0.1'),
        objects.service('web', 'shop', type='NodePort', ports=[443], annotations={'portico.io/tls-secret': 'web-tls'}),
        secret(cert, key)])))
    nodes, services, slices, source, secrets = _cluster.read_snapshot(str(path), _cluster.ServiceFilter())
    assert set(secrets) == {('shop', 'web-tls')} and secrets[('shop', 'web-tls')]['facts']['names'] == [
        '*.shop.example.com', 'shop.example.com']


# ---------------------------------------------------------------- what one Secret may cost

def test_haproxy_selects_a_certificate_by_its_common_name_too():
    cert, key, leaf = tls.certificate(['attacker.example.com'], cn='victim.example.com')
    assert _tls.read_tls_secret(secret(cert, key))[1]['names'] == ['attacker.example.com', 'victim.example.com']
    # every common name counts, and HAProxy reads each as a C string: a NUL ends it
    cert, key, leaf = tls.certificate(['a.example.com'], cn=['b.example.com', 'victim.example.com\x00.evil.example'])
    assert _tls.read_tls_secret(secret(cert, key))[1]['names'] == ['a.example.com', 'b.example.com',
                                                                   'victim.example.com']
    # a common name that is no DNS name (an organisation's name) can match no host, and is left out
    cert, key, leaf = tls.certificate(['a.example.com'], cn='Example Corp Internal')
    assert _tls.read_tls_secret(secret(cert, key))[1]['names'] == ['a.example.com']


def test_a_certificate_with_too_many_names_is_refused():
    cert, key, leaf = tls.certificate(['h%d.example.com' % i for i in range(_tls.MAX_NAMES)])
    assert refusal(secret(cert, key)) == ('Secret shop/web-tls: the certificate names %d hosts; at most %d are '
                                          'accepted' % (_tls.MAX_NAMES + 1, _tls.MAX_NAMES))


def test_pem_blocks_are_read_in_one_pass():
    block = b'-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'
    assert _tls.pem_blocks(b'junk\n' + block + b'more\n' + block, 'x') == [('CERTIFICATE', block.strip())] * 2
    with pytest.raises(InvalidValue, match='x has a PEM block "CERTIFICATE" without its END line'):
        _tls.pem_blocks(b'-----BEGIN CERTIFICATE-----\n' * 5000, 'x')
    with pytest.raises(InvalidValue, match='x holds more than 16 PEM blocks'):
        _tls.pem_blocks(block * 17, 'x')
    with pytest.raises(InvalidValue, match='x has a malformed PEM "BEGIN" line'):
        _tls.pem_blocks(b'-----BEGIN ' + b'A' * 1000, 'x')


PEM_PIECES = [b'-----BEGIN CERTIFICATE-----', b'-----END CERTIFICATE-----', b'-----BEGIN ', b'-----', b'\n', b'AAAA',
              b'-----END ']


@settings(max_examples=300)
@given(st.binary(max_size=400) | st.lists(st.sampled_from(PEM_PIECES), max_size=60).map(b''.join))
def test_any_bytes_give_blocks_or_a_reason(data):
    try:
        blocks = _tls.pem_blocks(data, 'tls.crt')
    except InvalidValue as exc:
        assert str(exc).startswith('tls.crt ')
        return
    assert len(blocks) <= _tls.MAX_PEM_BLOCKS
    for label, block in blocks:
        assert block.startswith(b'-----BEGIN ' + label.encode() + b'-----')
        assert block.endswith(b'-----END ' + label.encode() + b'-----')


def test_a_secret_bomb_is_refused_unread(shop_cert):
    cert, key, leaf = shop_cert
    many = cert.split(b'-----END CERTIFICATE-----')[0] + b'-----END CERTIFICATE-----\n'
    bombs = {
        'unterminated': (b'-----BEGIN CERTIFICATE-----\n' * 2000, key,
                         'Secret shop/web-tls: tls.crt has a PEM block "CERTIFICATE" without its END line'),
        'oversized': (b'A' * (_tls.MAX_CERTIFICATE_BYTES + 1), key, 'Secret shop/web-tls: tls.crt is larger than 64 KiB'),
        'long chain': (many * (_tls.MAX_CHAIN + 1), key,
                       'Secret shop/web-tls: tls.crt holds 11 certificates; a chain of at most 10 is accepted'),
        'many blocks': (b'-----BEGIN X-----\nA\n-----END X-----\n' * 17 + cert, key,
                        'Secret shop/web-tls: tls.crt holds more than 16 PEM blocks'),
        'big key': (cert, b'-----BEGIN PRIVATE KEY-----\n' + b'A' * _tls.MAX_KEY_BYTES,
                    'Secret shop/web-tls: tls.key is larger than 16 KiB'),
        'no key block': (cert, b'not a key', 'Secret shop/web-tls: tls.key is not a PEM private key'),
    }
    for name, (crt, tls_key, reason) in bombs.items():
        assert refusal(secret(crt, tls_key)) == reason, name


def test_the_limits_of_keys_and_time(shop_cert, monkeypatch):
    cert, key, leaf = tls.certificate(['shop.example.com'], kind='rsa')
    monkeypatch.setattr(_tls, 'MAX_RSA_BITS', 2047)
    assert refusal(secret(cert, key)) == \
        'Secret shop/web-tls: tls.key is an RSA key of 2048 bits; HAProxy needs 2048 to 2047'
    monkeypatch.setattr(_tls, 'PARSE_SECONDS', -1)
    assert refusal(secret(*shop_cert[:2])) == 'Secret shop/web-tls takes longer than -1.0 s to read; refused'


def test_an_older_certificate_naming_a_younger_services_host_by_cn_excludes_the_younger():
    attacker = tls.certificate(['attacker.example.com'], cn='victim.example.com')
    victim = tls.certificate(['victim.example.com'])
    secrets = {('evil', 'evil-tls'): _tls.read_tls_secret(secret(*attacker[:2], name='evil-tls', namespace='evil'))[1],
               ('shop', 'web-tls'): _tls.read_tls_secret(secret(*victim[:2]))[1]}

    def services(attacker_created, victim_created):
        return [service('evil', 443, attacker_created, namespace='evil', mode='http', hosts='attacker.example.com',
                        tls_secret='evil-tls'),
                service('web', 443, victim_created, mode='http', hosts='victim.example.com', tls_secret='web-tls')]
    older = _model.build_model([NODE], services('2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z'), {}, {}, None, secrets)
    assert [e['service'] for e in older['excluded_services']] == ['shop/web']
    assert older['excluded_services'][0]['reason'] == (
        'annotation portico.io/tls-secret: for host victim.example.com on port 443 HAProxy would serve the '
        'certificate of the older service evil/evil')
    younger = _model.build_model([NODE], services('2026-03-01T00:00:00Z', '2026-02-01T00:00:00Z'), {}, {}, None, secrets)
    assert [e['service'] for e in younger['excluded_services']] == ['evil/evil']
    assert 'also names host victim.example.com' in younger['excluded_services'][0]['reason']


def test_one_bind_line_takes_at_most_29_certificates():
    facts = dict(_tls.read_tls_secret(secret(*tls.certificate(['x.example.com'])[:2]))[1], names=[])
    services, secrets = [], {}
    for index in range(31):
        services.append(service('s%02d' % index, 443, '2026-01-%02dT00:00:00Z' % (index % 28 + 1), mode='http',
                                hosts='h%d.example.com' % index, tls_secret='t%d' % index))
        secrets[('shop', 't%d' % index)] = dict(facts, secret='shop/t%d' % index, file='shop_t%d.0123456789ab.pem' % index)
    model = _model.build_model([NODE], services, {}, {}, None, secrets)
    frontend, = model['frontends']
    assert len(frontend['tls']['certificates']) == 29
    excluded = [e for e in model['excluded_services'] if 'as many as one HAProxy bind line takes' in e['reason']]
    assert len(excluded) == 2


# ---------------------------------------------------------------- what HAProxy would refuse to load

def _signed(cn, public_key, issuer_cn, issuer_key, algorithm, ca=False):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)])).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False))
    return builder.sign(issuer_key, algorithm).public_bytes(serialization.Encoding.PEM)


def test_a_chain_haproxy_would_refuse_to_load_is_refused():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    for ca_key, name in ((rsa.generate_private_key(public_exponent=65537, key_size=1024), 'an RSA key of 1024 bits'),
                         (dsa.generate_private_key(key_size=1024), 'a DSA key of 1024 bits')):
        chain = (_signed('web.example.com', leaf_key.public_key(), 'weak CA', ca_key, hashes.SHA256())
                 + _signed('weak CA', ca_key.public_key(), 'weak CA', ca_key, hashes.SHA256(), ca=True))
        assert refusal(secret(chain, tls.key_pem(leaf_key))) == \
            'Secret shop/web-tls: certificate 2 of the chain has %s; HAProxy needs 2048 or more' % name
    assert refusal(secret(*_sha1_signed_leaf(leaf_key))) == \
        'Secret shop/web-tls: the leaf is signed with SHA-1, which HAProxy refuses'


def _sha1_signed_leaf(leaf_key):
    """(leaf PEM, key PEM): a leaf a CA signed with SHA-1 (the openssl command line still signs so)."""
    import subprocess
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / 'leaf.key').write_bytes(tls.key_pem(leaf_key))
        for command in (['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout',
                         'ca.key', '-out', 'ca.pem', '-subj', '/CN=CA', '-days', '2'],
                        ['req', '-new', '-key', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=web.example.com'],
                        ['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
                         '-sha1', '-days', '2', '-out', 'leaf.pem']):
            subprocess.run(['openssl'] + command, cwd=tmp, check=True, capture_output=True)
        return (tmp / 'leaf.pem').read_bytes(), tls.key_pem(leaf_key)


def _der(tag, body):
    size = len(body)
    head = bytes([size]) if size < 128 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
        (size.bit_length() + 7) // 8, 'big')
    return bytes([tag]) + head + body


def _integer(value):
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, 'big'))


def test_a_key_of_another_algorithm_is_refused_before_it_is_loaded(monkeypatch, shop_cert):
    # a DSA key with a p of 20,000 bits: loading it computes g^x mod p, seconds of arithmetic
    import random
    rng = random.Random(7)
    dsa_oid = bytes.fromhex('06072a8648ce380401')
    params = _der(0x30, _integer(rng.getrandbits(20000) | 1) + _integer(rng.getrandbits(160) | 1) + _integer(2))
    der = _der(0x30, _integer(0) + _der(0x30, dsa_oid + params) + _der(0x04, _integer(rng.getrandbits(10000))))
    pem = b'-----BEGIN PRIVATE KEY-----\n' + base64.encodebytes(der) + b'-----END PRIVATE KEY-----\n'

    def never(block):
        raise AssertionError('the key was loaded')
    monkeypatch.setattr(_tls, '_load_key', never)
    assert refusal(secret(shop_cert[0], pem)) == \
        'Secret shop/web-tls: tls.key is neither an RSA nor an ECDSA key; HAProxy serves RSA and ECDSA keys'
    assert _tls.pkcs8_algorithm(der) == dsa_oid
    assert _tls.pkcs8_algorithm(b'\x30\x82\xff') is None


def test_the_first_private_key_block_is_the_key():
    # "openssl ecparam -genkey" writes the curve's parameters before the key
    cert, key, leaf = tls.certificate(['shop.example.com'])
    params = b'-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n'
    assert _tls.read_tls_secret(secret(cert, params + key))[1]['key_type'] == 'ecdsa'


def test_an_ecdsa_wildcard_competes_with_an_rsa_exact_name():
    # HAProxy takes the first ECDSA and the first RSA match, exact or wildcard, then ECDSA if it can
    victim = tls.certificate(['a.example.com'], kind='rsa')
    attacker = tls.certificate(['*.example.com'])
    secrets = {('shop', 'victim'): _tls.read_tls_secret(secret(*victim[:2], name='victim'))[1],
               ('evil', 'wild'): _tls.read_tls_secret(secret(*attacker[:2], name='wild', namespace='evil'))[1]}
    assert (secrets[('shop', 'victim')]['key_type'], secrets[('evil', 'wild')]['key_type']) == ('rsa', 'ecdsa')
    services = [service('a', 443, '2026-01-01T00:00:00Z', mode='http', hosts='a.example.com', tls_secret='victim'),
                service('b', 443, '2026-02-01T00:00:00Z', namespace='evil', mode='http', hosts='b.example.com',
                        tls_secret='wild')]
    model = _model.build_model([NODE], services, {}, {}, None, secrets)
    assert [e['service'] for e in model['excluded_services']] == ['evil/b']
    assert 'also names host a.example.com' in model['excluded_services'][0]['reason']
    # one key type: the exact name wins, and the two share the port
    same = dict(secrets[('evil', 'wild')], key_type='rsa')
    secrets[('evil', 'wild')] = same
    model = _model.build_model([NODE], services, {}, {}, None, secrets)
    assert model['excluded_services'] == []
