# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: haproxy_generated_config
short_description: The generated part of haproxy.cfg from a routing model
version_added: 0.2.0
description:
  - Renders the frontends and backends of a routing model (the C(model) result of
    M(portico.k8s.nodeport_info)) as the text the P(portico.k8s.haproxy_sync#role) role places
    after the operator's base template. The same model and options give the same text, byte for byte.
  - Every value goes into a known slot of a known line and must fit that slot's strict character
    set; the text is then read back, and must hold exactly the model's sections and lines Portico
    writes. A model that fails either check (only a hand-made one can) fails the task naming the
    section and the value, and no text is produced.
options:
  _input:
    description: The routing model.
    type: dict
    required: true
  bind_address:
    description: The address of every C(bind) whose service names none (C(*) is every address).
    type: str
    default: "*"
  cert_dir:
    description: The directory of the TLS certificate files on the load balancer.
    type: str
    default: /etc/haproxy/portico-certs
  slowstart:
    description: The C(slowstart) time written on every server line (for example C(30s)); unset, none.
    type: str
    version_added: 0.2.0
  nonlocal_bind:
    description: Bind the own addresses of LoadBalancer Services with C(transparent), so they need not be on this host.
    type: bool
    default: true
    version_added: 0.3.0
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Write your own haproxy.cfg from the model
  ansible.builtin.copy:
    content: "{{ lookup('ansible.builtin.file', 'my-base.cfg') }}\n\n{{ routing.model | portico.k8s.haproxy_generated_config(bind_address='192.0.2.10') }}"
    dest: /etc/haproxy/haproxy.cfg
    validate: haproxy -c -f %s
'''

RETURN = r'''
_value:
  description: The generated part of C(haproxy.cfg), ending with a newline.
  type: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.portico.k8s.plugins.module_utils._haproxy import (
    DEFAULT_CERT_DIR,
    MalformedConfig,
    UnsafeValue,
    render,
)


def haproxy_generated_config(model, bind_address='*', cert_dir=DEFAULT_CERT_DIR, slowstart=None, nonlocal_bind=True):
    if not isinstance(model, dict) or not all(isinstance(model.get(k), list) for k in ('nodes', 'frontends', 'backends')):
        raise AnsibleFilterError('haproxy_generated_config: the input must be the model result of '
                                 'portico.k8s.nodeport_info (a dict with nodes, frontends and backends)')
    try:
        return render(model, bind_address, cert_dir, slowstart or None, bool(nonlocal_bind))
    except (UnsafeValue, MalformedConfig) as exc:
        raise AnsibleFilterError('haproxy_generated_config refused the model, so no configuration was written: %s' % exc)
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError('haproxy_generated_config: the model is not one portico.k8s.nodeport_info returns '
                                 '(%s: %s); no configuration was written' % (type(exc).__name__, exc))


class FilterModule(object):
    def filters(self):
        return {'haproxy_generated_config': haproxy_generated_config}
