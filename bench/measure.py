"""One measurement in a fresh interpreter; prints one JSON line.

    python bench/measure.py floor  --url U --token T --ca CA [--limit N]
    python bench/measure.py module --url U --token T --ca CA [--page-size N] [--model-out PATH]
    python bench/measure.py naive  --url U --token T --ca CA
    python bench/measure.py render --model PATH
    python bench/measure.py render_lines --lines N (--nodes N | --backends N)
    python bench/measure.py profile --url U --token T --ca CA [--page-size N]
    python bench/measure.py import
    python bench/measure.py playbook [--cwd DIR] [--env-json JSON] -- COMMAND...

Every kind imports what it needs and sets up its connection first, then reads
ru_maxrss (the interpreter baseline), does the work once under a wall clock, and reads
ru_maxrss again: peak_mb is the growth of the peak resident set caused by the work.
"""

import argparse
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for entry in (str(REPO / 'collection'), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

ROLE = REPO / 'roles' / 'haproxy_sync'


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------- the floor

LIST_PATHS = {'nodes': '/api/v1/nodes', 'services': '/api/v1/services',
              'endpointslices': '/apis/discovery.k8s.io/v1/endpointslices'}


def floor(args):
    """One GET per list page (urllib3, as the kubernetes client uses) and json.loads with GC paused."""
    import urllib3
    pool = urllib3.PoolManager(ca_certs=args.ca, cert_reqs='CERT_REQUIRED')
    headers = {'Authorization': 'Bearer ' + args.token, 'Accept': 'application/json'}
    counts = {}

    def work():
        for resource_name in args.lists.split(','):
            token, items = None, 0
            while True:
                fields = {}
                if args.limit:
                    fields['limit'] = str(args.limit)
                if token:
                    fields['continue'] = token
                response = pool.request('GET', args.url + LIST_PATHS[resource_name], fields=fields,
                                        headers=headers, preload_content=True, timeout=600)
                assert response.status == 200, response.status
                gc.disable()
                try:
                    page = json.loads(response.data)
                finally:
                    gc.enable()
                del response
                items += len(page['items'])
                token = page['metadata'].get('continue')
                del page
                if not token:
                    break
            counts[resource_name] = items

    return run(work, lambda: counts)


# ---------------------------------------------------------------- the module

def _options(args, page_size):
    return {
        'host': args.url, 'api_key': args.token, 'ca_cert': args.ca, 'validate_certs': True,
        'kubeconfig': None, 'context': None, 'client_cert': None, 'client_key': None, 'proxy': None,
        'snapshot': None, 'namespaces': [], 'label_selector': None, 'filter': None,
        'address_types': ['InternalIP', 'ExternalIP'], 'frontend_port': 'service_port',
        'api_timeout': 600, 'page_size': page_size, 'allow_no_nodes': False,
    }


def module(args):
    """collect_model(): paged raw JSON, slim records, the routing model (what nodeport_info runs)."""
    from ansible_collections.portico.k8s.plugins.module_utils._collect import collect_model
    options = _options(args, args.page_size)
    out = {}

    def work():
        out['model'] = collect_model(options.get)

    def extra():
        model = out['model']
        started = time.perf_counter()
        text = json.dumps(model)
        dumped = time.perf_counter() - started
        if args.model_out:
            Path(args.model_out).write_text(text)
        return {'summary': model['summary'], 'model_json_bytes': len(text), 'json_dumps_seconds': dumped}

    return run(work, extra)


def profile(args):
    import cProfile
    import io
    import pstats
    from ansible_collections.portico.k8s.plugins.module_utils._collect import collect_model
    options = _options(args, args.page_size)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    collect_model(options.get)
    profiler.disable()
    wall = time.perf_counter() - started
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats('tottime').print_stats(18)
    stats.sort_stats('cumulative').print_stats(25)
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    return {'seconds': wall, 'profile': stream.getvalue()}


# ---------------------------------------------------------------- the kubernetes client's default path

def naive(args):
    """CoreV1Api.list_node() and list_service_for_all_namespaces(): one page, model objects."""
    import kubernetes
    config = kubernetes.client.Configuration()
    config.host = args.url
    config.api_key = {'authorization': 'Bearer ' + args.token}
    config.ssl_ca_cert = args.ca
    config.verify_ssl = True
    out = {}

    def work():
        # Inside the clock, as in the module: kubernetes.client imports CoreV1Api lazily.
        api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
        out['nodes'] = api.list_node(_request_timeout=600)
        out['services'] = api.list_service_for_all_namespaces(_request_timeout=600)

    return run(work, lambda: {'nodes': len(out['nodes'].items), 'services': len(out['services'].items)})


# ---------------------------------------------------------------- rendering

def _renderer(model, overrides=None):
    """haproxy.cfg as portico.k8s.haproxy_config makes it: the role's base template through Ansible's
    templar (set up as the template lookup does), then the generated part in Python."""
    import yaml
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template
    init_plugin_loader([str(REPO / 'collection')])
    from ansible_collections.portico.k8s.plugins.module_utils._config import compose
    from ansible_collections.portico.k8s.plugins.module_utils._haproxy import render as render_generated
    variables = yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())
    variables.update({
        'haproxy_sync_model': model, 'ansible_search_path': [str(ROLE)],
        'haproxy_sync_chroot': '', 'haproxy_sync_user': '', 'haproxy_sync_group': '',
        'haproxy_sync_log_target': '', 'haproxy_sync_bind_address': '127.0.3.1',
    })
    variables.update(overrides or {})
    loader = DataLoader()
    loader.set_basedir(str(ROLE))
    source = ROLE / 'templates' / 'base.cfg.j2'
    text = trust_as_template(source.read_text())
    searchpath = [str(ROLE / 'templates'), str(ROLE)]
    templar = Templar(loader=loader, variables=variables).copy_with_new_env(
        searchpath=searchpath, available_variables=variables)
    jinja_overrides = dict(trim_blocks=True, lstrip_blocks=False, newline_sequence='\n')

    def render():
        base = templar.template(text, escape_backslashes=False, overrides=jinja_overrides)
        return compose(base, render_generated(model, variables['haproxy_sync_bind_address'],
                                              variables['haproxy_sync_cert_dir']))
    return render


def _render_run(model):
    render = _renderer(model)
    out = {}

    def work():
        out['text'] = render()

    def extra():
        text = out['text']
        return {'bytes': len(text), 'server_lines': text.count('\n    server '),
                'backends': len(model['backends']), 'nodes': len(model['nodes'])}
    return run(work, extra)


def render(args):
    model = json.loads(Path(args.model).read_text())
    return _render_run(model)


def synthetic_model(lines, nodes=None, backends=None):
    """A model with lines = nodes x backends server lines (give one of nodes, backends)."""
    if nodes:
        backends = lines // nodes
    else:
        nodes = lines // backends
    node_list = [{'name': 'node-%03d' % i, 'address': '10.0.%d.%d' % (i // 250, i % 250 + 1)} for i in range(nodes)]
    fronts, backs = [], []
    for b in range(backends):
        name = 'team-%03d.svc-%05d.%d' % (b % 100, b, 8000 + b)
        fronts.append({'name': name, 'port': 33000 + b, 'mode': 'tcp', 'backend': name,
                       'service': name, 'service_port': 8000 + b})
        backs.append({'name': name, 'service': name, 'namespace': 'team', 'service_name': 'svc',
                      'port_name': 'http', 'service_port': 8000 + b, 'node_port': 30000 + b % 2700,
                      'mode': 'tcp', 'balance': 'roundrobin', 'nodes': 'all'})
    return {'source': {'kind': 'api', 'server': 'https://k8s.example.com:6443'}, 'nodes': node_list,
            'excluded_nodes': [], 'frontends': fronts, 'backends': backs, 'services': [],
            'excluded_services': []}


def render_lines(args):
    return _render_run(synthetic_model(args.lines, args.nodes, args.backends))


def secret_bombs(tenants=3):
    """The Secrets of several tenants built to make reading them slow, and one good Secret each."""
    from tests.fakeapi import objects
    from tests.support import tls
    good_cert, good_key, dummy = tls.certificate(['good.example.com'])
    rsa_cert, rsa_key, dummy = tls.certificate(['rsa.example.com'], kind='rsa')
    one = good_cert
    bombs = {
        # the reported cases: 0.1.0 spent 7 s on the first and 120 s on the second
        'begin-128k': (b'-----BEGIN CERTIFICATE-----\n' * (128 * 1024 // 28), good_key),
        'begin-512k': (b'-----BEGIN CERTIFICATE-----\n' * (512 * 1024 // 28), good_key),
        'begin-60k': (b'-----BEGIN CERTIFICATE-----\n' * (60 * 1024 // 28), good_key),
        'blocks': (b'-----BEGIN X-----\nAA==\n-----END X-----\n' * 2000 + one, good_key),
        'garbage-blocks': (b'-----BEGIN CERTIFICATE-----\n' + b'QUFB' * 4000 + b'\n-----END CERTIFICATE-----\n', good_key),
        'long-chain': (one * 10, good_key),
        'rsa-chain': (rsa_cert * 10, rsa_key),
        'big-key': (one, b'-----BEGIN PRIVATE KEY-----\n' + b'QUFB' * 4000 + b'\n-----END PRIVATE KEY-----\n'),
        'bad-key-blocks': (one, b'-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n' * 300),
    }
    services, secrets = [], {}
    for tenant in range(tenants):
        namespace = 'tenant-%d' % tenant
        for name, (crt, key) in sorted(bombs.items()) + [('good', (good_cert, good_key))]:
            services.append({'namespace': namespace, 'name': name, 'annotations': {'tls-secret': name}})
            secrets[(namespace, name)] = objects.tls_secret(name, namespace, cert_pem=crt, key_pem=key)
    return services, secrets


def secrets(args):
    """What the Secret bombs of several tenants cost a whole collection (snapshot read, every Secret checked)."""
    import tempfile
    from ansible_collections.portico.k8s.plugins.module_utils import _collect
    from tests.fakeapi import objects
    services, objects_by_name = secret_bombs(args.tenants or 3)
    items = [objects.node('node-1', internal_ips='10.0.0.1')]
    for index, service in enumerate(services):
        items.append(objects.service(service['name'], service['namespace'], type='NodePort',
                                     annotations={'portico.io/tls-secret': service['name']},
                                     ports=[objects.service_port(8000 + index, node_port=30000 + index)]))
    items += list(objects_by_name.values())
    handle, path = tempfile.mkstemp(suffix='.json')
    with os.fdopen(handle, 'w') as out_file:
        json.dump(objects.cluster_list(items), out_file)
    options = {'snapshot': path, 'address_types': ['InternalIP']}
    out = {}

    def work():
        out['model'] = _collect.collect(options.get)[0]

    def extra():
        os.unlink(path)
        refused = [e for e in out['model']['excluded_services'] if 'tls-secret' in e['reason']]
        return {'secrets': len(objects_by_name), 'refused': len(refused),
                'bytes': sum(len(json.dumps(o)) for o in objects_by_name.values())}
    return run(work, extra)


def import_corev1api(args):
    """What the first use of kubernetes.client.CoreV1Api costs after `import kubernetes`."""
    import kubernetes
    return run(lambda: kubernetes.client.CoreV1Api, lambda: {})


def playbook(args):
    """Run a command (ansible-playbook); peak_mb is the largest process among it and its children."""
    import subprocess
    env = json.loads(args.env_json) if args.env_json else None
    started = time.perf_counter()
    result = subprocess.run(args.command, cwd=args.cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {'seconds': seconds, 'peak_mb': round(peak, 1), 'returncode': result.returncode,
            'output': result.stdout + result.stderr}


# ---------------------------------------------------------------- plumbing

def run(work, extra):
    gc.collect()
    base = maxrss_mb()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    peak = maxrss_mb()
    result = {'seconds': seconds, 'base_mb': round(base, 1), 'peak_mb': round(peak - base, 1)}
    result.update(extra() or {})
    return result


KINDS = {'floor': floor, 'module': module, 'naive': naive, 'render': render,
         'render_lines': render_lines, 'profile': profile, 'import': import_corev1api,
         'playbook': playbook, 'secrets': secrets}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('kind', choices=sorted(KINDS))
    parser.add_argument('--url')
    parser.add_argument('--token')
    parser.add_argument('--ca')
    parser.add_argument('--limit', type=int, default=0)
    parser.add_argument('--page-size', type=int, default=500)
    parser.add_argument('--lists', default='nodes,services', help='the lists the floor reads')
    parser.add_argument('--decoder', choices=['msgspec', 'json'], default='msgspec',
                        help='json: the standard library, as without msgspec (PORTICO_K8S_DECODER=json)')
    parser.add_argument('--model-out')
    parser.add_argument('--model')
    parser.add_argument('--lines', type=int)
    parser.add_argument('--profile-out')
    parser.add_argument('--nodes', type=int)
    parser.add_argument('--backends', type=int)
    parser.add_argument('--tenants', type=int)
    parser.add_argument('--cwd')
    parser.add_argument('--env-json')
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index('--') + 1:] if '--' in argv else []
    argv = argv[:argv.index('--')] if '--' in argv else argv
    args = parser.parse_args(argv)
    args.command = command
    if args.decoder == 'json':
        os.environ['PORTICO_K8S_DECODER'] = 'json'
    print(json.dumps(KINDS[args.kind](args)), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
