# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: unseal_certificates
short_description: Open the TLS bundles that portico.k8s.nodeport_info sealed
version_added: 0.2.0
description:
  - Returns the PEM bundles (certificate chain then private key) of the C(sealed_certificates)
    result of M(portico.k8s.nodeport_info), sealed under its O(portico.k8s.nodeport_info#module:seal_key).
  - The P(portico.k8s.haproxy_sync#role) role uses it for the O(portico.k8s.haproxy_lock#module:certificates)
    argument, which is never logged and travels with pipelining. The result holds private keys, so
    never print it or pass it to a module that logs its arguments.
options:
  _input:
    description: The sealed bundles, file name to sealed text.
    type: dict
    required: true
  key:
    description: The seal key the module was given.
    type: str
    required: true
requirements:
  - cryptography
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Take the lock and install the certificates (never logged)
  portico.k8s.haproxy_lock:
    path: /etc/haproxy/haproxy.cfg
    cert_dir: /etc/haproxy/portico-certs
    certificates: "{{ routing.sealed_certificates | portico.k8s.unseal_certificates(seal_key) }}"
  vars:
    ansible_pipelining: true
'''

RETURN = r'''
_value:
  description: File name to PEM bundle.
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.portico.k8s.plugins.module_utils._seal import SealError, unseal


def unseal_certificates(sealed, key):
    if not isinstance(sealed, dict):
        raise AnsibleFilterError('unseal_certificates: the input must be the sealed_certificates result of '
                                 'portico.k8s.nodeport_info (a dict)')
    try:
        return dict((name, unseal(key, name, text).decode('ascii')) for name, text in sealed.items())
    except (SealError, UnicodeDecodeError) as exc:
        raise AnsibleFilterError('unseal_certificates: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'unseal_certificates': unseal_certificates}
