# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: unseal_certificate
short_description: Open a TLS bundle that portico.k8s.nodeport_info sealed
version_added: 0.2.0
description:
  - Returns the PEM bundle (certificate chain then private key) of one entry of the
    C(sealed_certificates) result of M(portico.k8s.nodeport_info), sealed under its O(seal_key).
  - The P(portico.k8s.haproxy_sync#role) role uses it in C(no_log) tasks that install the files on
    the load balancers. The result holds a private key, so never print it.
options:
  _input:
    description: The sealed text.
    type: str
    required: true
  key:
    description: The seal key the module was given.
    type: str
    required: true
  name:
    description: The certificate file the bundle was sealed for.
    type: str
    required: true
requirements:
  - cryptography
author:
  - Portico maintainers (@portico-k8s)
'''

EXAMPLES = r'''
- name: Install one certificate (never logged)
  ansible.builtin.copy:
    content: "{{ routing.sealed_certificates[item.file] | portico.k8s.unseal_certificate(seal_key, item.file) }}"
    dest: "/etc/haproxy/portico-certs/{{ item.file }}"
    mode: "0600"
  loop: "{{ routing.model.certificates }}"
  no_log: true
'''

RETURN = r'''
_value:
  description: The PEM bundle.
  type: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.portico.k8s.plugins.module_utils._seal import SealError, unseal


def unseal_certificate(sealed, key, name):
    try:
        return unseal(key, name, sealed).decode('ascii')
    except (SealError, UnicodeDecodeError) as exc:
        raise AnsibleFilterError('unseal_certificate: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'unseal_certificate': unseal_certificate}
