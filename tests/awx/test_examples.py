"""examples/awx: the job template description matches the playbook, the role and AWX's formats."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
AWX = yaml.safe_load((REPO / 'examples' / 'awx' / 'job_templates.yml').read_text())['portico_awx']


def test_a_check_and_a_run_job_template_on_the_sync_playbook():
    templates = {t['job_type']: t for t in AWX['job_templates']}
    assert set(templates) == {'check', 'run'}
    for template in templates.values():
        assert (REPO / template['playbook']).is_file()
        assert template['diff_mode'] is True and template['allow_simultaneous'] is False


def test_the_run_job_is_scheduled_every_five_minutes():
    run = next(t['name'] for t in AWX['job_templates'] if t['job_type'] == 'run')
    [schedule] = AWX['schedules']
    assert schedule['job_template'] == run
    assert schedule['rrule'].startswith('DTSTART;TZID=UTC:') and 'RRULE:FREQ=MINUTELY;INTERVAL=5' in schedule['rrule']


def test_the_survey_asks_for_the_selectors_the_role_documents():
    specs = yaml.safe_load((REPO / 'roles' / 'haproxy_sync' / 'meta' / 'argument_specs.yml').read_text())
    options = specs['argument_specs']['main']['options']
    questions = AWX['survey']['spec']
    assert [q['variable'] for q in questions] == [
        'haproxy_sync_namespaces', 'haproxy_sync_label_selector', 'haproxy_sync_filter']
    for question in questions:
        assert question['variable'] in options
        # A schedule launches with the defaults: every question must be optional with a default.
        assert question['required'] is False and question['default'] == '' and question['type'] == 'text'


def test_the_credential_is_awx_kubernetes_bearer_token_type():
    kubernetes = AWX['credentials']['kubernetes']
    assert kubernetes['credential_type'] == 'OpenShift or Kubernetes API Bearer Token'
    assert set(kubernetes['inputs']) == {'host', 'bearer_token', 'verify_ssl', 'ssl_ca_cert'}
    assert 'loadbalancers' in AWX['inventory']['groups']


def test_configure_awx_uses_only_awx_modules_and_reads_the_description():
    plays = yaml.safe_load((REPO / 'examples' / 'awx' / 'configure_awx.yml').read_text())
    [play] = plays
    assert play['hosts'] == 'localhost' and play['vars_files'] == ['job_templates.yml']
    modules = {next(k for k in task if k.startswith('awx.awx.')) for task in play['tasks']}
    assert modules == {'awx.awx.execution_environment', 'awx.awx.credential', 'awx.awx.project',
                       'awx.awx.inventory', 'awx.awx.host', 'awx.awx.group', 'awx.awx.job_template',
                       'awx.awx.schedule'}
