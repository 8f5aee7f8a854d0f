#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: floating_address_info
short_description: Tell which floating addresses this load balancer holds now
version_added: 0.3.0
description:
  - Reads this host's addresses (C(ip -json address show)) and returns which of O(addresses), and of the
    addresses that O(keepalived_config) moves, are among them.
  - C(playbooks/sync.yml) runs it on every load balancer that manages keepalived
    (C(haproxy_sync_keepalived)) before the rollout, and updates the hosts that hold an address last.
  - Read-only; nothing on the host changes.
author:
  - Portico maintainers (@portico-k8s)
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
    details: Needs C(ip) of iproute2 on the host.
options:
  addresses:
    description: The floating addresses, each an address or an address with its prefix length.
    type: list
    elements: str
    default: []
  keepalived_config:
    description:
      - keepalived's file; the addresses its C(virtual_ipaddress) blocks move count as floating addresses too
        (those of LoadBalancer Services, as the last sync wrote them). A missing file adds none.
    type: path
requirements:
  - iproute2 (C(ip)) on the host
'''

EXAMPLES = r'''
- name: Does this load balancer hold the VIP?
  portico.k8s.floating_address_info:
    addresses: [192.0.2.100]
  register: floating

- name: Say so
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} holds {{ floating.held | join(', ') or 'nothing' }}"
'''

RETURN = r'''
held:
  description: The floating addresses this host holds, without prefix length.
  returned: always
  type: list
  elements: str
  sample: [192.0.2.100]
holds:
  description: Whether it holds any.
  returned: always
  type: bool
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portico.k8s.plugins.module_utils._keepalived import (
    VrrpError,
    configured_addresses,
    floating_addresses,
    holds,
)


def local_addresses(answer):
    """The addresses of 'ip -json address show' output, as text."""
    found = []
    for link in json.loads(answer):
        for info in link.get('addr_info') or []:
            if info.get('local'):
                found.append('%s/%s' % (info['local'], info.get('prefixlen', '')))
    return found


def main():
    module = AnsibleModule(argument_spec=dict(addresses=dict(type='list', elements='str', default=[]),
                                              keepalived_config=dict(type='path')),
                           supports_check_mode=True)
    given = list(module.params['addresses'])
    path = module.params['keepalived_config']
    if path:
        try:
            with open(path) as handle:
                given += configured_addresses(handle.read())
        except FileNotFoundError:
            pass
        except (IOError, OSError, UnicodeDecodeError) as exc:
            module.fail_json(msg='cannot read %s: %s' % (path, exc))
    wanted = []
    for address in given:
        try:
            wanted += [str(a) for a in floating_addresses([address], with_services=False)]
        except VrrpError as exc:
            if address in module.params['addresses']:
                module.fail_json(msg=str(exc))
            # a line of keepalived's file that is no floating address of ours
    ip = module.get_bin_path('ip')
    if not ip:
        module.fail_json(msg='ip (iproute2) was not found on this host, so which floating addresses it holds is '
                             'unknown; install iproute2')
    rc, out, err = module.run_command([ip, '-json', 'address', 'show'])
    if rc != 0:
        module.fail_json(msg='ip -json address show exited %d: %s' % (rc, (err or out).strip()))
    try:
        held = holds(wanted, local_addresses(out))
    except (ValueError, AttributeError, TypeError) as exc:
        module.fail_json(msg='cannot read the output of ip -json address show: %s' % exc)
    module.exit_json(changed=False, held=held, holds=bool(held))


if __name__ == '__main__':
    main()
