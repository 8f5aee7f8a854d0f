"""haproxy.cfg as the role writes it: the base template, a blank line, then the generated part.

The same functions portico.k8s.haproxy_config runs on the load balancer; the end-to-end tests
cover the real Ansible path.
"""

from ansible_collections.portico.k8s.plugins.module_utils._config import compose
from ansible_collections.portico.k8s.plugins.module_utils._haproxy import render as render_generated

BASE = """global
    master-worker
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""


def render(model, bind_address='127.0.0.1', base=BASE, cert_dir='/etc/haproxy/portico-certs'):
    return compose(base, render_generated(model, bind_address, cert_dir))
