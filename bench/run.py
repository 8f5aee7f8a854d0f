"""The benchmark: `make bench`, or `.venv/bin/python bench/run.py [--quick] [--profile] [--only eda]`.

For each cluster size it starts the test API server (bench/fastapi.py) in its own process,
then runs every measurement in a fresh interpreter (bench/measure.py), interleaved
(the order rotates each repetition), and keeps the median. Then it renders 25k/50k/100k
server lines, runs a whole no-op playbooks/sync.yml on three local HAProxy load
balancers at 5000 x 10000, measures the event-driven convergence (ansible-rulebook with the
rulebook sync_on_change and two local HAProxy load balancers: several services created one
after another), prints a table and the verdicts, and writes everything as JSON to
bench/results/.
"""

import argparse
import contextlib
import datetime
import difflib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import cluster  # noqa: E402
from tests.support import eda  # noqa: E402
from tests.support.haproxy import HAProxy, minimal_config, port_is_free  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
RESULTS = REPO / 'bench' / 'results'
LOAD_BALANCERS = {'lb-1': '127.0.3.1', 'lb-2': '127.0.3.2', 'lb-3': '127.0.3.3'}
RECAP = re.compile(r'^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)', re.M)
LARGE_PAGE = 100000
SCENARIOS = ('collect', 'playbooks', 'render', 'secrets', 'sync', 'eda')
# sizes whose collect task is also timed in a real ansible-playbook run, beside kubernetes.core.k8s_info
PLAYBOOK_SIZES = ('large', 'heavy')
# A virtualenv of the benchmark's own: the ansible package (it bundles kubernetes.core) and the
# kubernetes client, for k8s_info. Never the project's virtualenvs: Portico does not need them.
BENCH_ANSIBLE = REPO / 'build' / 'bench-ansible'
BENCH_ANSIBLE_REQUIREMENTS = ('ansible>=11', 'kubernetes>=30.1.0')
# The event-driven scenario: its own loopback addresses, so that it can run next to the tests.
EDA_NODES = {'worker-1': '127.0.4.11', 'worker-2': '127.0.4.12'}
# load balancers -> seconds from the create until the last one serves (the first: 5 s)
EDA_TARGETS = {2: 3.0, 5: 4.0}
EDA_TARGET = 5.0
# a node that joins or leaves: served (or no longer) by every load balancer within 2 s, no reload
NODE_TARGET = 2.0
EDA_EXTRA_NODES = {'worker-3': '127.0.4.13', 'worker-4': '127.0.4.14'}


def eda_load_balancers(count):
    """lb-a, lb-b ... on 127.0.4.1, 127.0.4.2 ..."""
    return dict(('lb-%s' % chr(ord('a') + i), '127.0.4.%d' % (i + 1)) for i in range(count))


# kind -> measure.py arguments (the server's are added)
KINDS = {
    'floor': ['floor'],
    'floor_p500': ['floor', '--limit', '500'],
    'module': ['module', '--page-size', '500'],
    # the same, without msgspec (the standard library's json, as where msgspec is not installed)
    'module_json': ['module', '--page-size', '500', '--decoder', 'json'],
    'module_big_page': ['module', '--page-size', str(LARGE_PAGE)],
    'naive': ['naive'],
}


def say(text):
    print(text, file=sys.stderr, flush=True)


def measure(*args, timeout=900):
    result = subprocess.run([PY, str(REPO / 'bench' / 'measure.py'), *args], capture_output=True, text=True,
                            timeout=timeout, cwd=REPO, check=False)
    if result.returncode != 0:
        raise RuntimeError('measure.py %s failed:\n%s%s' % (' '.join(args), result.stdout, result.stderr[-4000:]))
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def api_server(size, certdir, ready=None):
    command = [PY, str(REPO / 'bench' / 'fastapi.py'), size, '--certdir', str(certdir)]
    if ready is not None:
        command += ['--ready', str(ready)]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = server.stdout.readline()
        if not line:
            raise RuntimeError('the API server for %s did not start' % size)
        yield json.loads(line)
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def server_args(info):
    return ['--url', info['url'], '--token', info['token'], '--ca', info['ca']]


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def bench_size(size, reps, naive_reps, certdir, workdir, profile=False, playbooks=False):
    nodes, services = cluster.SIZES[size]
    say('== %s: %d nodes x %d services' % (size, nodes, services))
    out = {'nodes': nodes, 'services': services, 'runs': {k: [] for k in KINDS}}
    with api_server(size, certdir) as info:
        out['cluster'] = {k: v for k, v in info.items() if k not in ('url', 'token', 'ca')}
        say('   server ready in %.1fs; lists %s' % (info['setup_seconds'], ' + '.join(
            '%.1f MB' % (info[name + '_list_bytes'] / 1e6) for name in info['lists'])))
        args = server_args(info)
        # the floor reads every list the module reads (EndpointSlices only where there are Local services)
        lists = ['--lists', ','.join(info['lists'])]
        model_path = workdir / ('model-%s.json' % size)
        # Warm-up, not counted: the page cache of the files, the server's TLS session, the model file.
        measure('floor', *args, *lists)
        measure('module', '--model-out', str(model_path), *args)
        order = list(KINDS)
        for rep in range(reps):
            for kind in order[rep % len(order):] + order[:rep % len(order)]:
                if kind == 'naive' and rep >= naive_reps:
                    continue
                extra = lists if kind.startswith('floor') else []
                out['runs'][kind].append(measure(*KINDS[kind], *args, *extra))
            say('   rep %d/%d done' % (rep + 1, reps))
        out['runs']['import_corev1api'] = [measure('import') for unused in range(min(reps, 3))]
        if profile:
            for decoder in ('msgspec', 'json'):
                prof = measure('profile', '--decoder', decoder, '--profile-out',
                               str(RESULTS / ('profile-%s-%s.pstats' % (size, decoder))), *args)
                out.setdefault('profile', {})[decoder] = prof['profile']
                (RESULTS / ('profile-%s-%s.txt' % (size, decoder))).write_text(prof['profile'])
        if playbooks and size in PLAYBOOK_SIZES:
            out['playbooks'] = bench_playbooks(info, workdir / ('playbooks-%s' % size), reps)
    # rendering every node of the heavier scenario would write 35 million server lines
    if size not in cluster.HEAVY:
        render_reps = 1 if size == 'large' else reps
        out['runs']['render'] = [measure('render', '--model', str(model_path)) for unused in range(render_reps)]
    out['median'] = {k: {'seconds': median_of(v, 'seconds'), 'peak_mb': median_of(v, 'peak_mb')}
                     for k, v in out['runs'].items() if v}
    module_run = out['runs']['module'][0]
    out['model_json_bytes'] = module_run['model_json_bytes']
    out['summary'] = module_run['summary']
    if out['runs'].get('render'):
        out['render'] = {k: out['runs']['render'][0][k] for k in ('bytes', 'server_lines', 'backends', 'nodes')}
    return out


def bench_ansible():
    """The benchmark's own virtualenv with the ansible package (kubernetes.core) and kubernetes; made once."""
    python = BENCH_ANSIBLE / 'bin' / 'python'
    stamp = BENCH_ANSIBLE / '.portico-bench'
    if not python.exists() or not stamp.exists() or stamp.read_text() != ' '.join(BENCH_ANSIBLE_REQUIREMENTS):
        say('   making %s (the ansible package, for kubernetes.core.k8s_info)' % BENCH_ANSIBLE.relative_to(REPO))
        subprocess.run([PY, '-m', 'venv', '--clear', str(BENCH_ANSIBLE)], check=True)
        subprocess.run([str(python), '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
                        *BENCH_ANSIBLE_REQUIREMENTS], check=True)
        stamp.write_text(' '.join(BENCH_ANSIBLE_REQUIREMENTS))
    return python


K8S_INFO_PLAYBOOK = """- name: List the nodes and services with kubernetes.core
  hosts: localhost
  gather_facts: false
  tasks:
    - name: k8s_info | nodes
      kubernetes.core.k8s_info: {kind: Node, host: "%(url)s", api_key: "%(token)s", ca_cert: "%(ca)s", validate_certs: true}
      register: nodes
    - name: k8s_info | services
      kubernetes.core.k8s_info: {kind: Service, host: "%(url)s", api_key: "%(token)s", ca_cert: "%(ca)s", validate_certs: true}
      register: services
"""

# The collect step as playbooks/sync.yml runs it: the role's collect entry point (preflight, this
# run's seal key, the module with the model as JSON text, the task that keeps it, the summary).
COLLECT_TASK = 'Collect | read the routing model from the cluster'
COLLECT_PLAYBOOK = """- name: Collect the routing model with Portico
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Collect the routing model once for every load balancer
      ansible.builtin.include_role:
        name: portico.k8s.haproxy_sync
        tasks_from: collect
      vars:
        haproxy_sync_model_as_dict: false
        haproxy_sync_host: "%(url)s"
        haproxy_sync_api_key: "%(token)s"
        haproxy_sync_ca_cert: "%(ca)s"
        haproxy_sync_validate_certs: true
        haproxy_sync_api_timeout: 600
        haproxy_sync_drain_state_file: ""
"""


def _playbook_run(root, name, text, python, info, env):
    """ansible-playbook on localhost: (wall seconds of the run, {task: seconds}, peak MB)."""
    (root / (name + '.yml')).write_text(text % info)
    # the collect step checks that there are load balancers to update; none is contacted
    (root / 'inventory.ini').write_text('localhost ansible_connection=local\n[loadbalancers]\nlb1 ansible_connection=local\n')
    times = root / ('%s-times.jsonl' % name)
    times.unlink(missing_ok=True)
    env = dict(env, ANSIBLE_CALLBACK_PLUGINS=str(REPO / 'bench' / 'callback'), ANSIBLE_CALLBACKS_ENABLED='task_times',
               PORTICO_BENCH_TASK_TIMES=str(times), ANSIBLE_NOCOLOR='1', ANSIBLE_LOCAL_TEMP=str(root / 'tmp'),
               ANSIBLE_PYTHON_INTERPRETER=str(python))
    command = [str(Path(python).parent / 'ansible-playbook'), '-i', str(root / 'inventory.ini'), str(root / (name + '.yml'))]
    run = measure('playbook', '--cwd', str(root), '--env-json', json.dumps(env), '--', *command, timeout=3600)
    if run['returncode'] != 0:
        raise RuntimeError('%s failed:\n%s' % (name, run['output'][-4000:]))
    tasks = {}
    for line in times.read_text().splitlines():
        record = json.loads(line)
        if 'task' in record:
            tasks[record['task']] = tasks.get(record['task'], 0) + record['seconds']
    return run['seconds'], tasks, run['peak_mb']


def bench_playbooks(info, root, reps):
    """kubernetes.core.k8s_info listing the nodes and services (two tasks), and Portico's collect task,
    each in real ansible-playbook runs against the same API server."""
    root.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(('K8S_AUTH_', 'ANSIBLE_'))}
    (root / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = false\n')
    plain = dict(base, ANSIBLE_CONFIG=str(root / 'ansible.cfg'))
    portico = dict(base, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    out = {'k8s_info': [], 'collect': []}
    k8s_python = bench_ansible()
    say('   playbooks: kubernetes.core.k8s_info (nodes, services) and portico.k8s.nodeport_info')
    _playbook_run(root, 'collect', COLLECT_PLAYBOOK, PY, info, portico)  # warm-up: AnsiballZ cache, page cache
    for rep in range(reps):
        seconds, tasks, peak = _playbook_run(root, 'collect', COLLECT_PLAYBOOK, PY, info, portico)
        # the callback names a role's task after its role
        collect = [name for name in tasks if name.endswith(COLLECT_TASK)]
        out['collect'].append({'run_seconds': seconds, 'seconds': tasks[collect[0]],
                               'step_seconds': sum(tasks.values()), 'tasks': tasks, 'peak_mb': peak})
    # k8s_info takes minutes at this size: one run
    seconds, tasks, peak = _playbook_run(root, 'k8s_info', K8S_INFO_PLAYBOOK, k8s_python, info, plain)
    out['k8s_info'].append({'run_seconds': seconds, 'seconds': sum(tasks.values()), 'tasks': tasks, 'peak_mb': peak})
    version = subprocess.run([str(k8s_python), '-c', 'import ansible.release as r; print(r.__version__)'],
                             capture_output=True, text=True, check=False).stdout.strip()
    collections = subprocess.run([str(Path(k8s_python).parent / 'ansible-galaxy'), 'collection', 'list', 'kubernetes.core'],
                                 capture_output=True, text=True, check=False, env=plain).stdout
    found = re.search(r'kubernetes\.core\s+(\S+)', collections)
    out['versions'] = {'ansible_core': version, 'kubernetes_core': found.group(1) if found else '?'}
    for key in ('k8s_info', 'collect'):
        out[key + '_median'] = {name: statistics.median(r[name] for r in out[key]) for name in ('seconds', 'run_seconds', 'peak_mb')}
    out['collect_median']['step_seconds'] = statistics.median(r['step_seconds'] for r in out['collect'])
    say('   k8s_info %.1f s, Portico collect task %.2f s' % (out['k8s_info_median']['seconds'], out['collect_median']['seconds']))
    return out


def bench_render_lines(reps):
    say('== rendering 25k / 50k / 100k server lines')
    out = {}
    for shape, nodes in (('20 nodes, more backends', 20), ('1000 backends, more nodes', None)):
        rows = {}
        for lines in (25000, 50000, 100000):
            extra = ['--nodes', str(nodes)] if nodes else ['--backends', '1000']
            runs = [measure('render_lines', '--lines', str(lines), *extra) for unused in range(reps)]
            rows[lines] = {'seconds': median_of(runs, 'seconds'), 'peak_mb': median_of(runs, 'peak_mb'),
                           'server_lines': runs[0]['server_lines'], 'backends': runs[0]['backends'],
                           'nodes': runs[0]['nodes']}
        out[shape] = rows
    return out


def bench_secrets(reps):
    say('== reading the Secret bombs of several tenants')
    runs = [measure('secrets', '--tenants', '3') for unused in range(reps)]
    return {'seconds': median_of(runs, 'seconds'), 'max_seconds': max(r['seconds'] for r in runs),
            'peak_mb': median_of(runs, 'peak_mb'), 'secrets': runs[0]['secrets'], 'refused': runs[0]['refused'],
            'megabytes': runs[0]['bytes'] / 1e6}


def secrets_report(results):
    r = results.get('secrets')
    if not r:
        return []
    text = ('Secret bombs: %d Secrets of 3 tenants (%.1f MB, %d refused), read and checked in %.2f s '
            '(median, slowest %.2f s), %.0f MB peak')
    return ['', text % (r['secrets'], r['megabytes'], r['refused'], r['seconds'], r['max_seconds'], r['peak_mb'])]


def _free_ports_needed(model_path):
    model = json.loads(Path(model_path).read_text())
    ports = [f['port'] for f in model['frontends']]
    busy = sorted({p for p in ports for a in LOAD_BALANCERS.values() if not port_is_free(a, p)})
    return len(ports), busy


def bench_sync(reps, certdir, workdir):
    say('== no-op sync.yml: 5000 x 10000, 20 Ready nodes, 3 load balancers')
    root = Path(tempfile.mkdtemp(prefix='portico-bench-'))
    out = {'runs': []}
    # HAProxy wants a descriptor per listener and per checked server (~38 500 here) and, with
    # strict-limits (its default), refuses to start when it cannot raise RLIMIT_NOFILE that far.
    # Raise it if allowed; if not, run the role's base template with "no strict-limits" added
    # (no traffic flows in this scenario, so fewer descriptors than wanted do no harm).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 65536), max(hard, 65536)))
    out['nofile_limit'] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    base = (REPO / 'roles' / 'haproxy_sync' / 'templates' / 'base.cfg.j2').read_text()
    if out['nofile_limit'] < 65536:
        base = base.replace('global\n', 'global\n    no strict-limits\n', 1)
        out['no_strict_limits'] = True
    (root / 'base.cfg.j2').write_text(base)
    try:
        with api_server('large', certdir, ready=20) as info, contextlib.ExitStack() as stack:
            model_path = workdir / 'model-sync.json'
            first = measure('module', '--model-out', str(model_path), *server_args(info))
            out['summary'], out['model_json_bytes'] = first['summary'], first['model_json_bytes']
            frontends, busy = _free_ports_needed(model_path)
            if busy:
                raise RuntimeError('frontend ports already in use on 127.0.3.x: %s' % busy[:20])
            proxies = {}
            hosts = {}
            for host, address in LOAD_BALANCERS.items():
                (root / host).mkdir()
                config = root / host / 'haproxy.cfg'
                config.write_text(minimal_config(root / host / 'admin.sock'))
                proxies[host] = stack.enter_context(HAProxy(config, root / 'run' / ('%s.pid' % host)))
                hosts[host] = {
                    'haproxy_sync_config_path': str(config), 'haproxy_sync_bind_address': address,
                    'haproxy_sync_stats_socket': str(root / host / 'admin.sock'),
                    'haproxy_sync_reload_command': '/bin/kill -USR2 %d' % proxies[host].master_pid,
                    'haproxy_sync_config_owner': '{{ omit }}', 'haproxy_sync_config_group': '{{ omit }}',
                    'haproxy_sync_chroot': '', 'haproxy_sync_user': '', 'haproxy_sync_group': '',
                    'haproxy_sync_log_target': '', 'haproxy_sync_hard_stop_after': '5s',
                    # Tens of thousands of servers on stand-in addresses: check each once an hour,
                    # so health checks do not load the machine being measured.
                    'haproxy_sync_check_interval': '1h',
                    'haproxy_sync_base_template': str(root / 'base.cfg.j2'),
                }
            inventory = {'all': {
                'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': PY},
                'hosts': {'localhost': {}},
                'children': {'loadbalancers': {'hosts': hosts}}}}
            (root / 'inventory.json').write_text(json.dumps(inventory))
            env = {k: v for k, v in os.environ.items() if not k.startswith('K8S_AUTH_')}
            env.update({
                'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1',
                'ANSIBLE_LOCAL_TEMP': str(root / 'tmp'), 'ANSIBLE_REMOTE_TEMP': str(root / 'tmp'),
                'K8S_AUTH_HOST': info['url'], 'K8S_AUTH_API_KEY': info['token'],
                'K8S_AUTH_SSL_CA_CERT': info['ca'], 'K8S_AUTH_VERIFY_SSL': 'true',
                'PATH': '%s:%s:/usr/sbin:/sbin' % (BIN, os.environ.get('PATH', '')),
            })
            command = [str(BIN / 'ansible-playbook'), '-i', str(root / 'inventory.json'), 'playbooks/sync.yml']
            # The first run writes every haproxy.cfg and reloads; after it, every host is in sync.
            before = {h: p.state() for h, p in proxies.items()}
            first_run = measure('playbook', '--cwd', str(REPO), '--env-json', json.dumps(env), '--', *command)
            if first_run['returncode'] != 0:
                raise RuntimeError('the first sync failed:\n' + first_run['output'][-6000:])
            for host, proxy in proxies.items():
                proxy.wait_reloaded(before[host], timeout=60)
            out['first_run_seconds'] = first_run['seconds']
            # A run right after a change may change the files once more (state the role keeps
            # between runs); run until a run changes nothing, and report how many it took.
            out['settle_runs'], out['settle_diffs'] = [], []
            for unused in range(3):
                previous = (root / 'lb-1' / 'haproxy.cfg').read_text()
                run = measure('playbook', '--cwd', str(REPO), '--env-json', json.dumps(env), '--', *command)
                recap = {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(run['output'])}
                out['settle_runs'].append({'seconds': run['seconds'], 'recap': recap})
                if run['returncode'] != 0:
                    raise RuntimeError('a sync failed:\n' + run['output'][-6000:])
                if all(recap.get(h) == (0, 0) for h in LOAD_BALANCERS):
                    break
                diff = list(difflib.unified_diff(previous.splitlines(), (root / 'lb-1' / 'haproxy.cfg').read_text().splitlines(),
                                                 lineterm='', n=0))
                out['settle_diffs'].append({'changed_lines': sum(1 for d in diff if d[:1] in '+-') - 2,
                                            'excerpt': diff[:40]})
                time.sleep(2)
            else:
                raise RuntimeError('three runs in a row changed haproxy.cfg: %s' % out['settle_diffs'])
            out['config_bytes'] = (root / 'lb-1' / 'haproxy.cfg').stat().st_size
            out['frontends'] = frontends
            times = root / 'task-times.jsonl'
            timed_env = dict(env, ANSIBLE_CALLBACK_PLUGINS=str(REPO / 'bench' / 'callback'),
                             ANSIBLE_CALLBACKS_ENABLED='task_times', PORTICO_BENCH_TASK_TIMES=str(times))
            for rep in range(reps):
                states = {h: p.state() for h, p in proxies.items()}
                times.unlink(missing_ok=True)
                run = measure('playbook', '--cwd', str(REPO), '--env-json', json.dumps(timed_env), '--', *command)
                recap = {m['host']: (int(m['changed']), int(m['failed'])) for m in RECAP.finditer(run['output'])}
                noop = (run['returncode'] == 0 and all(recap.get(h) == (0, 0) for h in LOAD_BALANCERS)
                        and 'RUNNING HANDLER' not in run['output']
                        and all(p.state() == states[h] for h, p in proxies.items()))
                if not noop:
                    raise RuntimeError('the sync was not a no-op:\n' + run['output'][-6000:])
                tasks = {}
                for line in times.read_text().splitlines():
                    record = json.loads(line)
                    if 'task' in record:
                        tasks[record['task']] = tasks.get(record['task'], 0) + record['seconds']
                out['runs'].append({'seconds': run['seconds'], 'peak_mb': run['peak_mb'], 'recap': recap,
                                    'task_seconds': dict(sorted(tasks.items(), key=lambda t: -t[1]))})
                say('   no-op sync %d/%d: %.1fs' % (rep + 1, reps, run['seconds']))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out['median'] = {'seconds': median_of(out['runs'], 'seconds'), 'peak_mb': median_of(out['runs'], 'peak_mb')}
    return out


# ---------------------------------------------------------------- event-driven convergence

def _runs_of(records):
    """The task-times records of each playbook run, in order: [{'start', 'end', 'plays', 'tasks'}]."""
    runs = {}
    for record in records:
        run = runs.setdefault(record['pid'], {'start': None, 'end': None, 'plays': [], 'tasks': []})
        if 'playbook' in record:
            run['start'] = record['wall']
        elif 'stats' in record:
            run['end'] = record['wall']
        elif 'play' in record:
            run['plays'].append((record['wall'], record['play']))
        elif 'task' in record:
            run['tasks'].append(record)
    return sorted((r for r in runs.values() if r['start'] is not None), key=lambda r: r['start'])


def _timeline(change, run, hosts):
    """Seconds after the create of each step of one change's run, and its tasks' seconds per host."""
    created = change['created']
    out = {'event': change['event'], 'playbook_start': run['start'] - created,
           'run_end': (run['end'] - created) if run['end'] else None, 'hosts': {}, 'tasks': {}, 'ran': set(), 'order': []}
    for record in run['tasks']:
        if record['task'] not in out['order']:
            out['order'].append(record['task'])
        host = record['host']
        per_host = out['tasks'].setdefault(host, {})
        per_host[record['task']] = per_host.get(record['task'], 0.0) + record['seconds']
        if record['status'] != 'skipped':
            out['ran'].add(record['task'])
    for host in hosts:
        mine = [r for r in run['tasks'] if r['host'] == host]
        if not mine:
            continue
        reloads = [r for r in mine if r['task'].endswith('Bring HAProxy on this load balancer to the routing model')]
        out['hosts'][host] = {
            'first_task': min(r['start'] for r in mine) - created,
            'last_task_end': max(r['end'] for r in mine) - created,
            'reloaded': (reloads[-1]['end'] - created) if reloads else None,
            'served': change['served'].get(host),
            'task_seconds': sum(r['seconds'] for r in mine),
            'tasks': len(mine),
        }
        span = max(r['end'] for r in mine) - min(r['start'] for r in mine)
        out['hosts'][host]['between_tasks'] = span - out['hosts'][host]['task_seconds']
    controller = [r for r in run['tasks'] if r['host'] not in hosts]
    out['controller_task_seconds'] = sum(r['seconds'] for r in controller)
    first_lb = min((h['first_task'] for h in out['hosts'].values()), default=None)
    out['collect_end'] = max((r['end'] - created for r in controller if r['end'] - created <= (first_lb or 1e9)),
                             default=None)
    return out


def _spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values), 'n': len(values)}


def bench_eda(changes, serial, count=2):
    """ansible-rulebook runs extensions/eda/rulebooks/sync_on_change.yml (the real source against
    the test API server, the real playbooks/sync.yml against two local HAProxy load balancers);
    ``changes`` services are created one after another, each once the previous one's run ended.
    For each: seconds from the create to the source's event, to the first and to the last load
    balancer serving real traffic for it, plus the run's per-task times."""
    reason = eda.missing()
    if reason:
        raise RuntimeError(reason)
    EDA_LOAD_BALANCERS = eda_load_balancers(count)
    say('== event-driven convergence: %d changes, haproxy_sync_serial %s, %d load balancers' % (
        changes, serial, len(EDA_LOAD_BALANCERS)))
    root = Path(tempfile.mkdtemp(prefix='portico-bench-eda-'))
    times = root / 'task-times.jsonl'
    env = {'ANSIBLE_CALLBACK_PLUGINS': str(REPO / 'bench' / 'callback'), 'ANSIBLE_CALLBACKS_ENABLED': 'task_times',
           'PORTICO_BENCH_TASK_TIMES': str(times)}
    out = {'serial': serial, 'load_balancers': len(EDA_LOAD_BALANCERS), 'changes': []}
    try:
        (root / 'lab').mkdir()
        with eda.RulebookLab(root / 'lab', root / 'certs', services=changes + 1, load_balancers=EDA_LOAD_BALANCERS,
                             nodes=EDA_NODES, env=env,
                             rulebook_vars=None if serial == 'canary' else {'haproxy_sync_serial': serial}) as lab:
            if not lab.wait_started(120):
                raise RuntimeError('the startup sync did not serve the first service:\n' + lab.tail())
            for index in range(1, changes + 1):
                time.sleep(1.0)  # ansible-rulebook finishes the previous action after the playbook's end
                change = lab.change(index, timeout=60)
                if change['events'] != 1 or len(change['served']) != len(EDA_LOAD_BALANCERS) or change['run_ended'] is None:
                    raise RuntimeError('change %d did not converge: %s\n%s' % (index, change, lab.tail()))
                out['changes'].append(change)
                say('   change %d/%d: event after %ss, served %s, run ended after %ss' % (
                    index, changes, round(change['event'], 2), ', '.join('%s %.2fs' % i for i in sorted(change['served'].items())),
                    round(change['run_ended'], 1)))
            out['nodes'] = []
            # node churn: each extra node joins, then each leaves again
            for name, address in list(EDA_EXTRA_NODES.items()) + [(name, None) for name in EDA_EXTRA_NODES]:
                time.sleep(1.0)
                change = lab.node_change(name, address, timeout=60)
                if change['events'] != 1 or len(change['served']) != len(EDA_LOAD_BALANCERS):
                    raise RuntimeError('node %s did not converge: %s\n%s' % (name, change, lab.tail()))
                change['last'] = max(change['served'].values())
                out['nodes'].append(change)
                say('   node %s %s: event after %ss, served %s, %d reload(s)' % (
                    name, 'joined' if address else 'left', round(change['event'], 2),
                    ', '.join('%s %.2fs' % i for i in sorted(change['served'].items())), change['reloads']))
            out['node_last'] = _spread([c['last'] for c in out['nodes']])
            out['node_reloads'] = sum(c['reloads'] for c in out['nodes'])
            time.sleep(0.5)
            records = [json.loads(line) for line in times.read_text().splitlines() if line.strip()]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    runs = _runs_of(records)
    hosts = list(EDA_LOAD_BALANCERS)
    for change in out['changes']:
        run = next((r for r in runs if r['start'] > change['created']), None)
        if run is None:
            raise RuntimeError('no playbook run after change %d' % change['index'])
        change['timeline'] = _timeline(change, run, hosts)
        served = sorted(change['served'].values())
        change['first'], change['last'] = served[0], served[-1]
    items = out['changes']
    out['event'] = _spread([c['event'] for c in items])
    out['first'] = _spread([c['first'] for c in items])
    out['last'] = _spread([c['last'] for c in items])
    out['run_end'] = _spread([c['run_ended'] for c in items])
    out['phases'] = {
        'playbook_start': _spread([c['timeline']['playbook_start'] for c in items]),
        'collect_end': _spread([c['timeline']['collect_end'] for c in items]),
        'hosts': {host: {key: _spread([c['timeline']['hosts'].get(host, {}).get(key) for c in items])
                         for key in ('first_task', 'reloaded', 'last_task_end', 'served', 'task_seconds', 'tasks',
                                     'between_tasks')}
                  for host in hosts},
        'controller_task_seconds': _spread([c['timeline']['controller_task_seconds'] for c in items]),
    }
    out['skipped'] = {name: not any(name in c['timeline']['ran'] for c in items) for name in names_of(items)}
    for change in items:
        change['timeline']['ran'] = sorted(change['timeline']['ran'])
    out['tasks'] = {name: {host: _spread([c['timeline']['tasks'].get(host, {}).get(name) for c in items])
                           for host in ['localhost'] + hosts}
                    for name in names_of(items)}
    return out


def names_of(changes):
    """Every task name of the changes' runs, in run order."""
    names = []
    for change in changes:
        names += [n for n in change['timeline']['order'] if n not in names]
    return names


def _cell(spread):
    return '%.2f (%.2f-%.2f)' % (spread['median'], spread['min'], spread['max']) if spread else 'n/a'


def _timeline_text(variant):
    phases = variant['phases']
    steps = ['event %.2f' % variant['event']['median'], 'playbook starts %.2f' % phases['playbook_start']['median']]
    if phases['collect_end']:
        steps.append('collect play done %.2f' % phases['collect_end']['median'])
    for host, h in phases['hosts'].items():
        if h['first_task']:
            reloaded = ', reloaded %.2f' % h['reloaded']['median'] if h['reloaded'] else ''
            steps.append('%s: tasks %.2f-%.2f (%d tasks, %.2f s in tasks)%s, serves %.2f' % (
                host, h['first_task']['median'], h['last_task_end']['median'], h['tasks']['median'],
                h['task_seconds']['median'], reloaded, h['served']['median']))
    steps.append('run ends %.2f' % variant['run_end']['median'])
    return 'Timeline, %d load balancers, serial %s (median seconds after the create): %s' % (
        variant['load_balancers'], variant['serial'], '; '.join(steps))


def _task_table(variant):
    hosts = ['localhost'] + list(variant['phases']['hosts'])
    lines = ['Tasks of one event-driven run, %d load balancers, serial %s (median seconds per host over the changes, '
             'in run order)' % (variant['load_balancers'], variant['serial']),
             '| task | %s |' % ' | '.join(hosts), '|---|%s' % ('---:|' * len(hosts))]
    for name, per_host in variant['tasks'].items():
        short = name.replace('portico.k8s.haproxy_sync : ', '') + (' (skipped)' if variant['skipped'].get(name) else '')
        values = ['%.2f' % per_host[h]['median'] if per_host.get(h) else '' for h in hosts]
        lines.append('| %s | %s |' % (short, ' | '.join(values)))
    totals = ['%.2f' % variant['phases']['controller_task_seconds']['median']]
    gaps = ['']
    for host in hosts[1:]:
        h = variant['phases']['hosts'][host]
        totals.append('%.2f' % h['task_seconds']['median'])
        gaps.append('%.2f' % h['between_tasks']['median'])
    lines.append('| sum of the tasks | %s |' % ' | '.join(totals))
    lines.append('| between tasks (first task start to last task end, minus the sum) | %s |' % ' | '.join(gaps))
    return lines


def eda_report(variants):
    lines = ['Event-driven convergence (ansible-rulebook, rulebook sync_on_change, source against the test API server, '
             'HAProxy load balancers): seconds from the Service create at the API to',
             '| load balancers | haproxy_sync_serial | changes | event (source) | first LB serves | last LB serves | run ends |',
             '|---:|---|---:|---:|---:|---:|---:|']
    for v in variants:
        lines.append('| %d | %s | %d | %s | %s | %s | %s |' % (
            v['load_balancers'], v['serial'], len(v['changes']), _cell(v['event']), _cell(v['first']), _cell(v['last']),
            _cell(v['run_end'])))
    lines.append('(median (min-max); "serves": real HTTP requests through that HAProxy reach both nodes)')
    lines += ['', 'Node churn through the same rulebook: seconds from the Node create or delete at the API until '
              'real requests through every load balancer reach exactly the nodes there are, and reloads meanwhile',
              '| load balancers | haproxy_sync_serial | node changes | last LB serves | reloads |', '|---:|---|---:|---:|---:|']
    for v in variants:
        if v.get('nodes'):
            lines.append('| %d | %s | %d | %s | %d |' % (
                v['load_balancers'], v['serial'], len(v['nodes']), _cell(v['node_last']), v['node_reloads']))
    lines += [_timeline_text(v) for v in variants]
    lines.append('')
    return lines + _task_table(variants[0])


def machine():
    cpu = 'unknown'
    with contextlib.suppress(OSError):
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path('/proc/meminfo').read_text().split()[1]) // 1024
    versions = subprocess.run([PY, '-c', 'import ansible, kubernetes, jinja2; print(ansible.__version__, '
                               'kubernetes.__version__, jinja2.__version__)'], capture_output=True, text=True, check=False).stdout.split()
    return {'cpus': os.cpu_count(), 'cpu_model': cpu, 'memory_mb': mem, 'python': platform.python_version(),
            'ansible_core': versions[0] if versions else '?', 'kubernetes': versions[1] if len(versions) > 1 else '?',
            'jinja2': versions[2] if len(versions) > 2 else '?', 'kernel': platform.release()}


# ---------------------------------------------------------------- report

def verdict(ok):
    return 'PASS' if ok else 'FAIL'


def report(results):
    lines = []
    m = results['machine']
    lines.append('Machine: %d cores, %s, %d MB RAM, Python %s, ansible-core %s, kubernetes %s' % (
        m['cpus'], m['cpu_model'], m['memory_mb'], m['python'], m['ansible_core'], m['kubernetes']))
    if results['sizes']:
        lines.append('')
        lines += size_report(results)
    if results.get('render_lines'):
        lines.append('')
        lines += render_report(results)
    lines += secrets_report(results)
    lines += sync_report(results)
    lines += eda_section(results)
    lines.append('')
    lines.append('Targets')
    for name, value, ok in results['verdicts']:
        lines.append('- %s: %s: %s' % (verdict(ok), name, value))
    return '\n'.join(lines)


def _label(r):
    return '%d x %d%s' % (r['nodes'], r['services'], ' heavier' if r['cluster'].get('endpointslices') else '')


def size_report(results):
    lines = ['Wall time, median seconds (repetitions: %s)' % results['reps']]
    lines += ['| nodes x services | list MB | floor 1 page | floor p500 | module p500 (msgspec) | module p500 (json) | '
              'module p%d | k8s client | import CoreV1Api | render (server lines) |' % LARGE_PAGE,
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for size, r in results['sizes'].items():
        md = r['median']
        listed = sum(r['cluster'][name + '_list_bytes'] for name in r['cluster']['lists']) / 1e6
        render = '%.2f (%s)' % (md['render']['seconds'], '{:,}'.format(r['render']['server_lines'])) if 'render' in md else 'not run'
        lines.append('| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |' % (
            _label(r), listed, md['floor']['seconds'], md['floor_p500']['seconds'],
            md['module']['seconds'], md['module_json']['seconds'], md['module_big_page']['seconds'], md['naive']['seconds'],
            md['import_corev1api']['seconds'], render))
    lines.append('')
    lines.append('Peak memory, MB above the interpreter baseline (median)')
    lines += ['| nodes x services | floor 1 page | floor p500 | module p500 (msgspec) | module p500 (json) | module p%d | '
              'k8s client | import CoreV1Api | render |' % LARGE_PAGE, '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for size, r in results['sizes'].items():
        md = r['median']
        lines.append('| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |' % (
            _label(r), md['floor']['peak_mb'], md['floor_p500']['peak_mb'], md['module']['peak_mb'],
            md['module_json']['peak_mb'], md['module_big_page']['peak_mb'], md['naive']['peak_mb'],
            md['import_corev1api']['peak_mb'], '%.0f' % md['render']['peak_mb'] if 'render' in md else '-'))
    lines.append('')
    lines.append('Ratios (floor: the 1-page floor; model JSON: the size of the module result)')
    lines += ['| nodes x services | msgspec / floor | json / floor | mem msgspec / floor | mem json / floor | '
              'k8s client / msgspec | model JSON |', '|---|---:|---:|---:|---:|---:|---:|']
    for size, r in results['sizes'].items():
        md = r['median']
        floor, mem = md['floor']['seconds'], max(md['floor']['peak_mb'], 0.1)
        lines.append('| %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f MB |' % (
            _label(r), md['module']['seconds'] / floor, md['module_json']['seconds'] / floor,
            md['module']['peak_mb'] / mem, md['module_json']['peak_mb'] / mem,
            md['naive']['seconds'] / md['module']['seconds'], r['model_json_bytes'] / 1e6))
    growth = _growth(results)
    if growth:
        lines += ['', 'Growth from %s to %s (the lists grow %.1fx): floor %.1fx, module (msgspec) %.1fx, module (json) %.1fx'
                  % (growth['from'], growth['to'], growth['data'], growth['floor'], growth['module'], growth['module_json'])]
    played = [(size, r['playbooks']) for size, r in results['sizes'].items() if r.get('playbooks')]
    if played:
        versions = played[0][1]['versions']
        lines += ['', 'In real ansible-playbook runs on localhost (seconds of the tasks, median; ansible-core %s with '
                  'kubernetes.core %s for k8s_info, from the benchmark\'s own virtualenv)' % (
                      versions['ansible_core'], versions['kubernetes_core']),
                  '| nodes x services | k8s_info: nodes + services (2 tasks) | its run | its largest process MB | '
                  'Portico collect task | the whole collect step | its run | its largest process MB | '
                  'k8s_info / Portico collect task | k8s_info / the whole step |',
                  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
        for size, p in played:
            k, c = p['k8s_info_median'], p['collect_median']
            lines.append('| %s | %.1f | %.1f | %.0f | %.2f | %.2f | %.1f | %.0f | %.1f | %.1f |' % (
                _label(results['sizes'][size]), k['seconds'], k['run_seconds'], k['peak_mb'], c['seconds'],
                c['step_seconds'], c['run_seconds'], c['peak_mb'], k['seconds'] / c['seconds'],
                k['seconds'] / c['step_seconds']))
    return lines


def _growth(results):
    """From the medium size to the large one: how much the lists, the floor and the module grow."""
    sizes = results['sizes']
    if 'medium' not in sizes or 'large' not in sizes:
        return None
    small, big = sizes['medium'], sizes['large']

    def data(r):
        return sum(r['cluster'][name + '_list_bytes'] for name in r['cluster']['lists'])
    return {'from': _label(small), 'to': _label(big), 'data': data(big) / data(small),
            'floor': big['median']['floor']['seconds'] / small['median']['floor']['seconds'],
            'module': big['median']['module']['seconds'] / small['median']['module']['seconds'],
            'module_json': big['median']['module_json']['seconds'] / small['median']['module_json']['seconds']}


def render_report(results):
    lines = ['Rendering N server lines (base template through the templar, generated part in Python, as haproxy_config does), median seconds']
    lines += ['| shape | 25,000 | 50,000 | 100,000 | 100k / 25k |', '|---|---:|---:|---:|---:|']
    for shape, rows in results['render_lines'].items():
        s = [rows[n]['seconds'] for n in (25000, 50000, 100000)]
        lines.append('| %s | %.2f | %.2f | %.2f | %.2f |' % (shape, s[0], s[1], s[2], s[2] / s[0]))
    return lines


def sync_report(results):
    lines = []
    sync = results.get('sync')
    if results.get('sync_error'):
        lines.append('')
        lines.append('No-op sync: NOT MEASURED, the scenario failed (see sync_error in the JSON).')
    if sync:
        lines.append('')
        lines.append('No-op sync.yml at 5000 x 10000 (20 Ready nodes, %d frontends, haproxy.cfg %.1f MB, 3 load balancers): '
                     'median %.1f s over %d runs, largest process %.0f MB (first, changing run: %.1f s)' % (
                         sync['frontends'], sync['config_bytes'] / 1e6, sync['median']['seconds'], len(sync['runs']),
                         sync['median']['peak_mb'], sync['first_run_seconds']))
        slowest = sync['runs'][len(sync['runs']) // 2]['task_seconds']
        lines.append('Slowest tasks of a no-op run (seconds, summed over hosts): ' + '; '.join(
            '%s %.1f' % (name, seconds) for name, seconds in list(slowest.items())[:8]))
        if sync.get('settle_diffs'):
            lines.append('Note: %d run(s) after the first changed haproxy.cfg again before one changed nothing '
                         '(first diff: %d changed lines; see settle_diffs in the JSON).' % (
                             len(sync['settle_diffs']), sync['settle_diffs'][0]['changed_lines']))
    return lines


def eda_section(results):
    lines = []
    if results.get('eda_error'):
        lines += ['', 'Event-driven convergence: NOT MEASURED, the scenario failed (see eda_error in the JSON).']
    if results.get('eda'):
        lines.append('')
        lines += eda_report(results['eda'])
    return lines


def eda_verdicts(results):
    out = []
    for v in results.get('eda') or []:
        for key, what in (('first', 'the first load balancer'), ('last', 'every load balancer')):
            t = v[key]['median']
            target = EDA_TARGETS.get(v['load_balancers'], EDA_TARGET) if key == 'last' else EDA_TARGET
            out.append(('EDA: a new service is served by %s of %d within %.0f s (median of %d changes, haproxy_sync_serial %s)' % (
                what, v['load_balancers'], target, v[key]['n'], v['serial']),
                '%.2f s (%.2f-%.2f)' % (t, v[key]['min'], v[key]['max']), t <= target))
        if v.get('nodes'):
            worst = v['node_last']['max']
            out.append(('EDA: a node that joins or leaves is served (or no longer) by all %d load balancers within %.0f s, '
                        'with no reload (every one of %d node changes, haproxy_sync_serial %s)' % (
                            v['load_balancers'], NODE_TARGET, len(v['nodes']), v['serial']),
                        '%.2f s at worst (median %.2f), %d reloads' % (worst, v['node_last']['median'], v['node_reloads']),
                        worst <= NODE_TARGET and v['node_reloads'] == 0))
    return out


def verdicts(results):
    out = collection_verdicts(results) + eda_verdicts(results)
    if results.get('secrets'):
        r = results['secrets']
        out.append(('Secret bombs of several tenants cost the sync under 2 s in total', '%.2f s (slowest %.2f s)'
                    % (r['seconds'], r['max_seconds']), r['max_seconds'] < 2.0))
    return out


def collection_verdicts(results):
    out = []
    if not results['sizes']:
        return [('no-op sync (floor not measured in this run)', '%.1f s' % results['sync']['median']['seconds'], True)] \
            if results.get('sync') else []
    for size in ('large', 'heavy'):
        r = results['sizes'].get(size)
        if r is None:
            continue
        md, label = r['median'], _label(r)
        floor = md['floor']['seconds']
        for kind, target, what in (('module', 0.5, 'msgspec'), ('module_json', 0.7, 'the standard library\'s json')):
            ratio = md[kind]['seconds'] / floor
            out.append(('collection+model <= %.1fx the json.loads floor with %s (%s)' % (target, what, label),
                        '%.2f s = %.2fx the 1-page floor (%.2f s)' % (md[kind]['seconds'], ratio, floor), ratio <= target))
        mem = md['module']['peak_mb'] / max(md['floor']['peak_mb'], 0.1)
        out.append(('peak memory of the collection <= 0.5x the 1-page floor (%s)' % label,
                    '%.0f MB = %.2fx (%.0f MB); %.2fx with json' % (
                        md['module']['peak_mb'], mem, md['floor']['peak_mb'],
                        md['module_json']['peak_mb'] / max(md['floor']['peak_mb'], 0.1)), mem <= 0.5))
        if r.get('playbooks'):
            k, c = r['playbooks']['k8s_info_median']['seconds'], r['playbooks']['collect_median']['seconds']
            out.append(('Portico\'s collect task >= 20x faster than kubernetes.core.k8s_info listing the nodes and '
                        'services (%s)' % label, '%.2f s against %.1f s: %.1fx' % (c, k, k / c), k / c >= 20))
        size_mb = r['model_json_bytes'] / 1e6
        out.append(('module result at %s a few MB' % label, '%.2f MB' % size_mb, size_mb <= 5))
    growth = _growth(results)
    if growth:
        out.append(('linear growth: %s to %s costs <= 10x (the lists grow %.1fx)' % (growth['from'], growth['to'], growth['data']),
                    '%.1fx with msgspec, %.1fx with json (the floor %.1fx)' % (growth['module'], growth['module_json'],
                                                                               growth['floor']),
                    growth['module'] <= 10))
    for shape, rows in (results.get('render_lines') or {}).items():
        t = rows[100000]['seconds']
        lin = rows[100000]['seconds'] / rows[25000]['seconds']
        out.append(('100k server lines render < 1 s and linear (%s)' % shape,
                    '%.2f s; 100k/25k = %.2f (linear: <= 4)' % (t, lin), t < 1.0 and lin <= 4.4))
    if results.get('sync'):
        large = results['sizes'].get('large') or list(results['sizes'].values())[-1]
        floor = large['median']['floor']['seconds']
        t = results['sync']['median']['seconds']
        out.append(('no-op sync <= floor + 4 s', '%.1f s vs %.1f s' % (t, floor + 4), t <= floor + 4))
    return out


def _serials(text):
    return [int(x) if x.isdigit() else x for x in text.split(',') if x]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='small and medium only, no playbooks, sync or eda')
    parser.add_argument('--reps', type=int, default=5, help='repetitions at the small and medium sizes')
    parser.add_argument('--large-reps', type=int, default=3)
    parser.add_argument('--naive-large-reps', type=int, default=2)
    parser.add_argument('--sync-reps', type=int, default=3)
    parser.add_argument('--no-sync', action='store_true')
    parser.add_argument('--no-eda', action='store_true', help='skip the event-driven convergence')
    parser.add_argument('--eda-changes', type=int, default=7, help='services created one after another, per serial')
    parser.add_argument('--eda-serial', default='canary',
                        help='comma-separated haproxy_sync_serial values the event-driven scenario runs with; '
                             '"canary" (the default) passes none, so the playbook\'s [1, "100%%"] applies')
    parser.add_argument('--eda-load-balancers', default='2,5',
                        help='comma-separated numbers of load balancers of the event-driven scenario (default 2,5)')
    parser.add_argument('--only', default='', help='comma-separated scenarios to run, of: %s' % ', '.join(SCENARIOS))
    parser.add_argument('--sizes', default='small,medium,large,heavy',
                        help='comma-separated: small, medium, large, heavy (5000 x 10000, the heavier scenario)')
    parser.add_argument('--profile', action='store_true', help='also cProfile collect_model at each size')
    args = parser.parse_args(argv)
    only = [x for x in args.only.split(',') if x]
    if any(x not in SCENARIOS for x in only):
        parser.error('--only takes %s' % ', '.join(SCENARIOS))
    wanted = set(only or SCENARIOS)
    if args.quick:
        wanted -= {'sync', 'eda', 'playbooks'}
    if args.no_sync:
        wanted.discard('sync')
    if args.no_eda:
        wanted.discard('eda')
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {'machine': machine(), 'started': datetime.datetime.now().isoformat(timespec='seconds'),
               'reps': {}, 'sizes': {}}
    with tempfile.TemporaryDirectory(prefix='portico-bench-') as tmp:
        tmp = Path(tmp)
        certdir = tmp / 'certs'
        sizes = [s for s in args.sizes.split(',') if s and not (args.quick and s in ('large', 'heavy'))] \
            if 'collect' in wanted else []
        for size in sizes:
            big = size in ('large', 'heavy')
            reps = args.large_reps if big else args.reps
            naive_reps = args.naive_large_reps if big else reps
            results['reps'][size] = {'reps': reps, 'naive_reps': naive_reps}
            results['sizes'][size] = bench_size(size, reps, naive_reps, certdir, tmp, args.profile,
                                                playbooks='playbooks' in wanted)
        results['render_lines'] = bench_render_lines(3) if 'render' in wanted else {}
        if 'secrets' in wanted:
            results['secrets'] = bench_secrets(5)
        if 'sync' in wanted:
            try:
                results['sync'] = bench_sync(args.sync_reps, certdir, tmp)
            except Exception as exc:  # keep the other results; say why the sync was not measured
                results['sync_error'] = str(exc)[-3000:]
                say('!! the sync scenario failed: %s' % str(exc)[-3000:])
        if 'eda' in wanted:
            results['eda'] = []
            for count, serial in [(c, s) for c in _serials(args.eda_load_balancers) for s in _serials(args.eda_serial)]:
                try:
                    results['eda'].append(bench_eda(args.eda_changes, serial, count))
                except Exception as exc:  # as above; the other serial values still run
                    results['eda_error'] = str(exc)[-3000:]
                    say('!! the event-driven scenario failed (serial %s): %s' % (serial, str(exc)[-3000:]))
    results['verdicts'] = verdicts(results)
    results['seconds'] = round(time.monotonic() - started, 1)
    text = report(results)
    results['report'] = text
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    for name in ('bench-%s.json' % stamp, 'latest.json'):
        (RESULTS / name).write_text(json.dumps(results, indent=1))
    print(text)
    print('\n(%.0f s in all; results in bench/results/bench-%s.json)' % (results['seconds'], stamp))
    return 0


if __name__ == '__main__':
    sys.exit(main())
