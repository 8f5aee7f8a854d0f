"""Inventories and environments for real ansible-playbook runs against local HAProxy instances."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def load_balancer(root, bind_address, master_pid, **overrides):
    """Host vars of one load balancer on this machine: its own file, socket and running HAProxy."""
    root = Path(root)
    host_vars = {
        'haproxy_sync_config_path': str(root / 'haproxy.cfg'),
        'haproxy_sync_bind_address': bind_address,
        'haproxy_sync_stats_socket': str(root / 'admin.sock'),
        'haproxy_sync_reload_command': '/bin/kill -USR2 %d' % master_pid,
        # whoever runs the tests owns the files; no chroot, user or syslog for a scratch instance
        'haproxy_sync_config_owner': '{{ omit }}', 'haproxy_sync_config_group': '{{ omit }}',
        'haproxy_sync_chroot': '', 'haproxy_sync_user': '', 'haproxy_sync_group': '',
        'haproxy_sync_log_target': '', 'haproxy_sync_hard_stop_after': '5s',
    }
    host_vars.update(overrides)
    return host_vars


def inventory(load_balancers, state_dir, **all_vars):
    """localhost (the controller) plus the group loadbalancers; drain state kept in state_dir."""
    variables = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                 'haproxy_sync_drain_state_file': str(Path(state_dir) / 'drain-state.json')}
    variables.update(all_vars)
    return {'all': {'vars': variables, 'hosts': {'localhost': {}},
                    'children': {'loadbalancers': {'hosts': load_balancers}}}}


def sync_env(api=None, token=None, temp=None):
    """The environment of a run: the checkout's ansible.cfg, and the API as AWX's credential sets it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('K8S_AUTH_')}
    env.update({'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1',
                'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json',
                'PATH': '%s:%s:/usr/sbin:/sbin' % (BIN, os.environ.get('PATH', ''))})
    if temp:
        env.update({'ANSIBLE_LOCAL_TEMP': str(temp), 'ANSIBLE_REMOTE_TEMP': str(temp)})
    if api is not None:
        env.update({'K8S_AUTH_HOST': api.url, 'K8S_AUTH_API_KEY': token or api.token,
                    'K8S_AUTH_SSL_CA_CERT': str(api.ca_path), 'K8S_AUTH_VERIFY_SSL': 'true'})
    return env
