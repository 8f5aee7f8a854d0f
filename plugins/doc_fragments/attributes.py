# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Attributes documented once: those of a read-only info module, and the action group."""

    INFO_MODULE = r'''
attributes:
  check_mode:
    description: Can run in check mode and return the same result as a normal run.
    support: full
    details: The module only reads the cluster, so check mode changes nothing about what it does.
  diff_mode:
    description: Will return details on what has changed when in diff mode.
    support: N/A
    details: The module changes nothing.
  idempotent:
    description: Running it twice on the same cluster state gives the same result.
    support: full
'''

    # Modules of the portico.k8s.k8s action group: module_defaults carries the connection once.
    ACTION_GROUP = r'''
attributes:
  action_group:
    description: Use C(group/portico.k8s.k8s) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - portico.k8s.k8s
'''
