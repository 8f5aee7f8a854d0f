# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a sync did, as figures: the model's generation and counts, which way each load balancer
took the change, and the records that keep them (a node_exporter textfile on each load
balancer, a JSON report and the job's stats on the controller).

Private to this collection; plain functions, used by the haproxy_config module (the textfile) and
the sync_report action (the report). A failed run records the failure and keeps the time of the
last success.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import math
import re

# What a load balancer serves of a model: a change in any of these is a change of haproxy.cfg.
# Certificates count by file (the file name carries a hash of the content), not by facts that
# follow the clock (expired, not_yet_valid).
_SERVED = ('nodes', 'draining_nodes', 'frontends', 'backends')
# The counts of a model, by their names in the report and the metrics.
COUNTS = ('frontends', 'backends', 'eligible_nodes', 'draining_nodes', 'excluded_nodes', 'excluded_services')
# How a load balancer took a run: its ways in the report, the job's stats and the textfile.
WAYS = ('reload', 'runtime', 'installed', 'none', 'outdated', 'failed', 'unreachable', 'not reached')
# The longest lists a report carries (a large cluster can exclude thousands of service ports).
LISTED = 50


def generation(model):
    """A short hash of what a model makes a load balancer serve: equal models, equal generations,
    whatever the cluster's resourceVersion or the time it was read. None for no model."""
    if not isinstance(model, dict):
        return None
    served = dict((key, model.get(key) or []) for key in _SERVED)
    served['certificates'] = sorted(c.get('file') for c in model.get('certificates') or [] if isinstance(c, dict))
    text = json.dumps(served, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def _how_many(model, key):
    """len(model[key]), or the count a slimmed model carries instead of the list (see _config.slim)."""
    if isinstance(model.get(key + '_count'), int):
        return model[key + '_count']
    return len(model.get(key) or [])


def counts(model):
    """{frontends, backends, eligible_nodes, draining_nodes, excluded_nodes, excluded_services} of a model
    (whole, or as the host step gets it); {} for no model."""
    if not isinstance(model, dict):
        return {}
    return {'frontends': len(model.get('frontends') or []), 'backends': len(model.get('backends') or []),
            'eligible_nodes': len(model.get('nodes') or []), 'draining_nodes': len(model.get('draining_nodes') or []),
            'excluded_nodes': _how_many(model, 'excluded_nodes'),
            'excluded_services': _how_many(model, 'excluded_services')}


def source_of(model):
    """Which cluster state a model was read from: kind, server or snapshot, resourceVersion, read_at."""
    source = model.get('source') if isinstance(model, dict) else None
    source = source if isinstance(source, dict) else {}
    return dict((key, source[key]) for key in ('kind', 'server', 'snapshot', 'resource_version', 'read_at')
                if source.get(key) is not None)


def way(result, check_mode=False):
    """How a load balancer took a run, from its host step's result (None: the step never ran there).

    reload: HAProxy reloaded with the new file; runtime: server changes went through the runtime
    API, no reload; installed: a new file whose comments alone changed; none: nothing to change;
    outdated: a newer model was there and stays. In check mode, the way it would go.
    """
    if not isinstance(result, dict):
        return 'not reached'
    if result.get('unreachable'):
        return 'unreachable'
    if result.get('failed'):
        return 'failed'
    if result.get('skipped'):
        return 'not reached'
    if result.get('outdated'):
        return 'outdated'
    if result.get('reloaded'):
        return 'reload'
    if result.get('applied_at_runtime') or (check_mode and result.get('changed') and not result.get('reload_reason')):
        return 'runtime' if result.get('runtime_changes') else 'installed'
    if check_mode and result.get('changed'):
        return 'reload'
    # servers that left earlier and finished their connections were deleted at runtime
    return 'runtime' if result.get('changed') else 'none'


# --- the node_exporter textfile of one load balancer ------------------------------------------

# name: (type, help). The order is the file's.
METRICS = (
    ('portico_sync_info', 'gauge', 'The load balancer this file is about (its inventory name) and its configuration file.'),
    ('portico_sync_success', 'gauge', 'Whether the last sync of this load balancer succeeded (1) or failed (0).'),
    ('portico_sync_last_run_timestamp_seconds', 'gauge', 'When the last sync of this load balancer ended.'),
    ('portico_sync_last_success_timestamp_seconds', 'gauge',
     'When a sync last succeeded on this load balancer (a failed run keeps it).'),
    ('portico_sync_runs_total', 'counter', 'Syncs of this load balancer, by result.'),
    ('portico_sync_reloads_total', 'counter', 'Syncs that reloaded HAProxy.'),
    ('portico_sync_runtime_updates_total', 'counter', 'Syncs that applied server changes through the runtime API, '
                                                      'without a reload.'),
    ('portico_sync_runtime_server_changes_total', 'counter', 'Server changes applied through the runtime API.'),
    ('portico_sync_last_run_reloaded', 'gauge', 'Whether the last sync reloaded HAProxy.'),
    ('portico_sync_last_run_runtime_changes', 'gauge', 'Server changes the last sync applied through the runtime API.'),
    ('portico_sync_model_info', 'gauge', 'The generation (a hash) of the routing model this load balancer serves.'),
    ('portico_sync_model_read_timestamp_seconds', 'gauge', 'When the model it serves was read from the cluster.'),
    ('portico_sync_config_installed_timestamp_seconds', 'gauge', 'When its current haproxy.cfg was installed.'),
    ('portico_sync_frontends', 'gauge', 'Frontends of the model it serves.'),
    ('portico_sync_backends', 'gauge', 'Backends of the model it serves.'),
    ('portico_sync_eligible_nodes', 'gauge', 'Nodes eligible for traffic in the model it serves.'),
    ('portico_sync_draining_nodes', 'gauge', 'Nodes draining (weight 0) in the model it serves.'),
    ('portico_sync_excluded_nodes', 'gauge', 'Nodes left out of the model it serves, each for a reason.'),
    ('portico_sync_excluded_services', 'gauge', 'Services or service ports left out of the model it serves, each '
                                                'for a reason.'),
)
METRIC_NAMES = tuple(entry[0] for entry in METRICS)
_LINE = re.compile(r'(portico_sync_[a-z_]+)(?:\{([a-z_]+)="((?:[^"\\\n]|\\[\\"n])*)"(?:,([a-z_]+)="((?:[^"\\\n]|\\[\\"n])*)")?\})? '
                   r'(-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\Z')
_TOTALS = ('reloads', 'runtime_updates', 'runtime_server_changes')


def _escape(text):
    return str(text).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _unescape(text):
    return re.sub(r'\\([\\"n])', lambda m: '\n' if m.group(1) == 'n' else m.group(1), text)


def _number(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return '%d' % value
    return ('%.3f' % value).rstrip('0').rstrip('.')


def _finite(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_textfile(text):
    """The record a textfile of render_textfile holds: {load_balancer, config, success, last_run_at,
    last_success_at, successes, failures, reloads, runtime_updates, runtime_server_changes,
    last_run_reloaded, last_run_runtime_changes, generation, model_read_at, installed_at, counts}.
    Lines it does not know are skipped, so a damaged file loses only what it lost."""
    record = {'counts': {}}
    for line in (text or '').split('\n'):
        match = _LINE.match(line.strip())
        if not match:
            continue
        name, key, label, key2, label2, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        if not math.isfinite(number):
            continue
        integer = int(number) if number.is_integer() and number >= 0 else None
        short = name[len('portico_sync_'):]
        labels = dict((k, _unescape(v)) for k, v in ((key, label), (key2, label2)) if k)
        if short == 'info':
            record['load_balancer'], record['config'] = labels.get('load_balancer'), labels.get('config')
        elif short == 'success':
            record['success'] = number == 1
        elif short == 'last_run_timestamp_seconds':
            record['last_run_at'] = number
        elif short == 'last_success_timestamp_seconds':
            record['last_success_at'] = number
        elif short == 'runs_total' and integer is not None and labels.get('result') in ('success', 'failure'):
            record['successes' if labels['result'] == 'success' else 'failures'] = integer
        elif short.endswith('_total') and short[:-len('_total')] in _TOTALS and integer is not None:
            record[short[:-len('_total')]] = integer
        elif short == 'last_run_reloaded':
            record['last_run_reloaded'] = number == 1
        elif short == 'last_run_runtime_changes' and integer is not None:
            record['last_run_runtime_changes'] = integer
        elif short == 'model_info' and labels.get('generation') is not None:
            record['generation'] = labels['generation']
        elif short == 'model_read_timestamp_seconds':
            record['model_read_at'] = number
        elif short == 'config_installed_timestamp_seconds':
            record['installed_at'] = number
        elif short in COUNTS and integer is not None:
            record['counts'][short] = integer
    return record


def next_host_record(previous, outcome, now):
    """The textfile record after this run. previous: what read_textfile read (or {}); outcome:
    {load_balancer, config, ok, way, runtime_changes, generation, model_read_at, installed_at, counts}
    of this run, where a failed run's generation, times and counts are those still served (or None,
    then the previous ones are kept). A failed run keeps the last success time."""
    previous = previous or {}
    ok = bool(outcome.get('ok'))
    record = {'load_balancer': outcome.get('load_balancer') or previous.get('load_balancer') or '',
              'config': outcome.get('config') or previous.get('config') or '',
              'success': ok, 'last_run_at': now,
              'last_success_at': now if ok else _finite(previous.get('last_success_at'))}
    record['successes'] = _count(previous.get('successes')) + (1 if ok else 0)
    record['failures'] = _count(previous.get('failures')) + (0 if ok else 1)
    current = outcome.get('way')
    changes = _count(outcome.get('runtime_changes')) if ok and current == 'runtime' else 0
    record['reloads'] = _count(previous.get('reloads')) + (1 if ok and current == 'reload' else 0)
    record['runtime_updates'] = _count(previous.get('runtime_updates')) + (1 if ok and current == 'runtime' else 0)
    record['runtime_server_changes'] = _count(previous.get('runtime_server_changes')) + changes
    record['last_run_reloaded'] = ok and current == 'reload'
    record['last_run_runtime_changes'] = changes
    for key in ('generation', 'model_read_at', 'installed_at'):
        value = outcome.get(key)
        record[key] = value if value is not None else previous.get(key)
    given = outcome.get('counts')
    record['counts'] = dict(given) if given else dict(previous.get('counts') or {})
    return record


def render_textfile(record):
    """The node_exporter textfile (Prometheus text format) of a host record; metrics without a value are left out."""
    values = {
        'portico_sync_info': [('{load_balancer="%s",config="%s"}' % (_escape(record.get('load_balancer') or ''),
                                                                     _escape(record.get('config') or '')), 1)],
        'portico_sync_success': [('', 1 if record.get('success') else 0)],
        'portico_sync_last_run_timestamp_seconds': [('', _finite(record.get('last_run_at')))],
        'portico_sync_last_success_timestamp_seconds': [('', _finite(record.get('last_success_at')))],
        'portico_sync_runs_total': [('{result="success"}', _count(record.get('successes'))),
                                    ('{result="failure"}', _count(record.get('failures')))],
        'portico_sync_last_run_reloaded': [('', 1 if record.get('last_run_reloaded') else 0)],
        'portico_sync_last_run_runtime_changes': [('', _count(record.get('last_run_runtime_changes')))],
        'portico_sync_model_info': [('{generation="%s"}' % _escape(record['generation']), 1)]
        if record.get('generation') else [],
        'portico_sync_model_read_timestamp_seconds': [('', _finite(record.get('model_read_at')))],
        'portico_sync_config_installed_timestamp_seconds': [('', _finite(record.get('installed_at')))],
    }
    for key in _TOTALS:
        values['portico_sync_%s_total' % key] = [('', _count(record.get(key)))]
    for key in COUNTS:
        if key in (record.get('counts') or {}):
            values['portico_sync_' + key] = [('', _count(record['counts'][key]))]
    lines = []
    for name, kind, text in METRICS:
        samples = [(labels, value) for labels, value in values.get(name, []) if value is not None]
        if not samples:
            continue
        lines.extend(['# HELP %s %s' % (name, text), '# TYPE %s %s' % (name, kind)])
        lines.extend('%s%s %s' % (name, labels, _number(value)) for labels, value in samples)
    return '\n'.join(lines) + '\n'


# --- the report of a run, on the controller --------------------------------------------------

def _entries(entries):
    """'<service> <port>: <reason>' of the first LISTED entries of excluded_services or warnings."""
    shown = []
    for entry in (entries or [])[:LISTED]:
        if isinstance(entry, dict):
            shown.append('%s %s: %s' % (entry.get('service'), entry.get('port') or 'all ports', entry.get('reason')))
    return shown


def _host_entry(result, previous, now, check_mode):
    """One load balancer's part of the report; previous: its part of the last report."""
    current = way(result, check_mode)
    ok = current not in ('failed', 'unreachable', 'not reached')
    entry = {'result': 'success' if ok else ('failure' if current in ('failed', 'unreachable') else 'not reached'),
             'way': current, 'changed': bool(isinstance(result, dict) and result.get('changed') and ok)}
    if isinstance(result, dict):
        entry['message'] = result.get('msg')
        for key in ('reload_reason', 'runtime_changes', 'generation', 'installed_model_time'):
            if result.get(key) is not None:
                entry[key] = result[key]
        for key in ('backends_removed', 'certificates_changed', 'leaving'):
            if result.get(key):
                entry[key] = list(result[key])[:LISTED]
    else:
        entry['message'] = 'not reached: the run stopped before this load balancer'
    last = _finite((previous or {}).get('last_success_at'))
    entry['last_success_at'] = now if ok and not check_mode else last
    return entry


def run_report(previous, model, results, failure, now, check_mode=False):
    """The report of a run (a dict, JSON-ready).

    previous: the last report (or None); model: the run's model (None when it was never
    collected); results: [(load balancer, its host step's result or None)], in inventory order;
    failure: {'stage', 'message'} when the run failed outside a host step (else None). A failed
    run keeps the last success time (of the run and of each load balancer).
    """
    previous = previous if isinstance(previous, dict) else {}
    before_hosts = previous.get('load_balancers') if isinstance(previous.get('load_balancers'), dict) else {}
    before_run = previous.get('run') if isinstance(previous.get('run'), dict) else {}
    hosts = {}
    for name, result in results:
        hosts[name] = _host_entry(result, before_hosts.get(name), now, check_mode)
    failed_hosts = [name for name, entry in hosts.items() if entry['result'] == 'failure']
    ok = failure is None and not failed_hosts and all(entry['result'] == 'success' for entry in hosts.values())
    run = {'result': 'success' if ok else 'failure', 'finished_at': now, 'check_mode': bool(check_mode)}
    if failure:
        run['failed_stage'] = failure.get('stage') or 'collect'
        run['message'] = failure.get('message')
    elif failed_hosts:
        run['failed_stage'] = 'load balancers'
        run['message'] = '; '.join('%s: %s' % (name, hosts[name].get('message')) for name in failed_hosts[:5])
    elif not ok:
        run['failed_stage'] = 'load balancers'
        run['message'] = 'not every load balancer took the model: %s' % ', '.join(
            name for name, entry in hosts.items() if entry['result'] != 'success')
    run['last_success_at'] = now if ok and not check_mode else _finite(before_run.get('last_success_at'))
    ways = [entry['way'] for entry in hosts.values()]
    run['reloads'] = ways.count('reload')
    run['runtime_updates'] = ways.count('runtime')
    run['runtime_server_changes'] = sum(entry.get('runtime_changes', 0) for entry in hosts.values()
                                        if entry['way'] == 'runtime')
    report = {'run': run, 'load_balancers': hosts}
    if isinstance(model, dict):
        report['model'] = {'generation': generation(model), 'source': source_of(model), 'counts': counts(model),
                           'excluded_services': _entries(model.get('excluded_services')),
                           'warnings': _entries(model.get('warnings'))}
    elif isinstance(previous.get('model'), dict):
        # the run read nothing: what the load balancers serve is still the last model
        report['model'] = dict(previous['model'], note='from the last run that read the cluster')
    return report


def stats(report):
    """The job's stats (set_stats) of a report: the same facts, without the lists of excluded
    services and warnings (their counts are in it)."""
    out = dict(report)
    if isinstance(report.get('model'), dict):
        out['model'] = dict((key, value) for key, value in report['model'].items()
                            if key not in ('excluded_services', 'warnings'))
    return out
