"""Render the role's haproxy.cfg.j2 with plain Jinja2, as the template module would.

Fast enough for property tests; the end-to-end tests cover the real Ansible path.
"""

from pathlib import Path

import jinja2

REPO_TEMPLATES = TEMPLATES = Path(__file__).resolve().parents[2] / 'roles' / 'haproxy_sync' / 'templates'
BASE = """global
    master-worker
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""


def render(model, bind_address='127.0.0.1', base=BASE, cert_dir='/etc/haproxy/portico-certs'):
    # The template module's defaults: trim_blocks on, trailing newline kept.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters['zip'] = lambda first, *others: list(zip(first, *others))
    env.globals['lookup'] = lambda kind, name: base
    return env.get_template('haproxy.cfg.j2').render(
        haproxy_sync_model=model, haproxy_sync_bind_address=bind_address, haproxy_sync_base_template='base',
        haproxy_sync_cert_dir=cert_dir)
