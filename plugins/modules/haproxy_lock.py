#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_lock
short_description: Take or release a load balancer's sync lock, read what its configuration serves, install certificates
version_added: 0.2.0
deprecated:
  removed_in: 1.0.0
  why: "The host step is one call now: M(portico.k8s.haproxy_config) takes and releases the lock itself."
  alternative: Use M(portico.k8s.haproxy_config).
description:
  - One run at a time per load balancer. O(state=present) takes the lock, a directory beside
    the configuration file (C(<path>.portico-lock); C(mkdir) is atomic), waiting up to O(timeout)
    seconds while another run holds it. A lock older than O(stale_seconds) was left by a run that
    died and is taken away first.
  - In the same call it reads the current configuration and returns the backends and certificate
    files of its generated part, so the safety valve of the P(portico.k8s.haproxy_sync#role) role
    needs no second read of a file that can be hundreds of megabytes.
  - The lock holds a token file naming this run; O(state=absent) with O(token) releases it only
    if it is still this run's. A stale lock is moved aside under a unique name before it is
    removed, so of two runs that find it stale only one takes it away.
  - With O(certificates), it then installs the TLS certificate files the new configuration names
    in O(cert_dir) (mode C(0700), files mode C(0600), written atomically and only when they differ),
    before the configuration is validated; in check mode it writes them to a new temporary
    directory for the check instead (RV(check_cert_dir)) and the caller removes it.
  - Used by the P(portico.k8s.haproxy_sync#role) role; it runs on the load balancer. The role runs it
    with pipelining, so that the certificates in its arguments never pass through a temporary file
    on the controller.
author:
  - Portico maintainers (@portico-k8s)
attributes:
  check_mode:
    description: Can run in check mode and return what a normal run would read.
    support: full
    details:
      - In check mode the lock is neither taken nor released; the current file is still read.
      - O(certificates) go to a temporary directory for the check, not to O(cert_dir).
  diff_mode:
    description: Will return details on what has changed when in diff mode.
    support: N/A
    details: The lock is transient and the module never reports a change.
options:
  path:
    description: The HAProxy configuration file the lock guards.
    type: path
    required: true
  state:
    description: V(present) takes the lock and reads the file; V(absent) releases the lock.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for another run to release the lock before failing.
    type: int
    default: 300
  stale_seconds:
    description: A lock older than this many seconds is taken away.
    type: int
    default: 1800
  cert_dir:
    description:
      - The directory whose certificate files (C(crt <cert_dir>/<file>.pem)) are reported, and where
        O(certificates) are installed.
    type: path
  certificates:
    description:
      - TLS bundles to install, file name (C(<namespace>_<secret>.<version>.pem)) to PEM text (the
        certificate chain, then the private key). Never logged.
      - Not installed on a host that already has a newer model (RV(newer_installed)).
    type: dict
    version_added: 0.2.0
  cert_owner:
    description: Owner of O(cert_dir) and of the certificate files; unset, the user the module runs as.
    type: str
    version_added: 0.2.0
  cert_group:
    description: Group of O(cert_dir) and of the certificate files; unset, that user's group.
    type: str
    version_added: 0.2.0
  model_time:
    description:
      - When the model this run applies was read from the cluster (C(source.read_at) of the model,
        seconds since the epoch). RV(newer_installed) says whether a run that read the cluster later
        already installed its model here (recorded beside the file by M(portico.k8s.haproxy_reload)).
    type: float
  token:
    description:
      - With O(state=absent), the RV(token) this run got; a lock holding another token is left alone.
      - Unset, the lock is removed whoever holds it.
    type: str
'''

EXAMPLES = r'''
- name: Take the lock and read the current file
  portico.k8s.haproxy_lock:
    path: /etc/haproxy/haproxy.cfg
    cert_dir: /etc/haproxy/portico-certs
  register: current

- name: Release it
  portico.k8s.haproxy_lock:
    path: /etc/haproxy/haproxy.cfg
    state: absent
    token: "{{ current.token }}"
'''

RETURN = r'''
lock:
  description: The lock directory.
  returned: always
  type: str
  sample: /etc/haproxy/haproxy.cfg.portico-lock
taken:
  description: Whether this call took the lock (false in check mode and for O(state=absent)).
  returned: always
  type: bool
token:
  description: What the lock's token file holds while this run has it (empty when not taken).
  returned: always
  type: str
released:
  description: Whether O(state=absent) removed the lock.
  returned: when O(state=absent)
  type: bool
stale_removed:
  description: Whether a stale lock was taken away first.
  returned: when O(state=present)
  type: bool
waited:
  description: Seconds spent waiting for another run.
  returned: when O(state=present)
  type: float
exists:
  description: Whether the configuration file exists.
  returned: when O(state=present)
  type: bool
backends:
  description: The C(backend) sections of the file's generated part (after the Portico header), in file order.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [guestbook.frontend.80]
installed_model_time:
  description: When the model installed here was read from the cluster, or null if unknown.
  returned: when O(state=present)
  type: float
newer_installed:
  description: Whether the model installed here was read later than O(model_time).
  returned: when O(state=present)
  type: bool
stored_certificates:
  description:
    - The certificate files of the collection in O(cert_dir) (named C(<namespace>_<secret>.<version>.pem)),
      whether a configuration binds them or not (a refused configuration can leave some behind).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [shop_web-tls.0123456789ab.pem]
certificates:
  description: The certificate files under O(cert_dir) that the file's generated part binds.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [shop_web-tls.pem]
certificates_changed:
  description: The files of O(certificates) that were new or different in O(cert_dir) (in check mode, would be).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [shop_web-tls.0123456789ab.pem]
  version_added: 0.2.0
check_cert_dir:
  description: In check mode with O(certificates), the temporary directory that holds them; the caller removes it.
  returned: when O(state=present)
  type: str
  version_added: 0.2.0
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portico.k8s.plugins.module_utils._certificates import CertificateError, install
from ansible_collections.portico.k8s.plugins.module_utils._config import read_generated, stored_certificates
from ansible_collections.portico.k8s.plugins.module_utils._lock import (
    LOCK_SUFFIX,
    LockError,
    installed_model_time,
    release,
    take,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            timeout=dict(type='int', default=300),
            stale_seconds=dict(type='int', default=1800),
            cert_dir=dict(type='path'),
            certificates=dict(type='dict', no_log=True),
            cert_owner=dict(type='str'),
            cert_group=dict(type='str'),
            token=dict(type='str', no_log=False),
            model_time=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    lock = module.params['path'] + LOCK_SUFFIX
    if module.params['state'] == 'absent':
        released = False
        if not module.check_mode:
            try:
                released = release(lock, module.params['token'])
            except OSError as exc:
                module.fail_json(msg='cannot release the lock %s: %s' % (lock, exc), lock=lock, taken=False, token='')
        module.exit_json(changed=False, lock=lock, taken=False, token='', released=released)
    token, stale_removed, waited = '', False, 0.0
    if not module.check_mode:
        try:
            # this module's process ends before the lock is released: it is no holder to ask
            token, stale_removed, waited = take(lock, module.params['timeout'], module.params['stale_seconds'],
                                                process=False)
            stale_removed = bool(stale_removed)
        except LockError as exc:
            module.fail_json(msg=str(exc))
    installed = installed_model_time(module.params['path'])
    newer = None not in (installed, module.params['model_time']) and installed > module.params['model_time']
    try:
        exists, backends, certificates, foreign = read_generated(module.params['path'], module.params['cert_dir'])
    except Exception as exc:
        if token:
            release(lock, token)
        module.fail_json(msg='cannot read %s: %s' % (module.params['path'], exc))
    changed, check_cert_dir = [], ''
    # a host that already has a newer model is left alone: its certificates too
    if module.params['certificates'] and not newer:
        if not module.params['cert_dir']:
            if token:
                release(lock, token)
            module.fail_json(msg='certificates need cert_dir; nothing was changed here')
        try:
            changed, target = install(module.params['cert_dir'], module.params['certificates'],
                                      module.params['cert_owner'], module.params['cert_group'], module.check_mode)
        except CertificateError as exc:
            if token:
                release(lock, token)
            module.fail_json(msg='cannot install the TLS certificates on this host: %s; haproxy.cfg was not changed'
                                 % exc)
        check_cert_dir = target if module.check_mode else ''
    if foreign:
        module.warn('%s holds lines that Portico never writes in its generated part (%s): the mark of a '
                    'configuration injected through cluster data into a file an older version wrote. This sync '
                    'replaces them; check the host for what they may have run.'
                    % (module.params['path'], ', '.join('line %d: %r' % item for item in foreign)))
    module.exit_json(changed=False, lock=lock, taken=bool(token), token=token, stale_removed=stale_removed,
                     waited=waited, exists=exists, backends=backends, certificates=certificates,
                     stored_certificates=stored_certificates(module.params['cert_dir']),
                     installed_model_time=installed, newer_installed=newer,
                     certificates_changed=changed, check_cert_dir=check_cert_dir)


if __name__ == '__main__':
    main()
