#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: haproxy_config
short_description: Bring one load balancer's HAProxy to a routing model in one call, hitlessly
version_added: 0.2.0
description:
  - The whole host step of a sync, on one load balancer, in one call; the
    P(portico.k8s.haproxy_sync#role) role runs it once per load balancer.
  - "In order: wait for and take this host's lock (a directory beside the file,
    C(<path>.portico-lock)); leave the host alone if a run that read the cluster later already
    updated it; render the generated part from O(model) (C(portico.k8s.haproxy_generated_config));
    the safety valve (O(max_removal_ratio)); install the TLS certificates the new file binds; write
    the candidate (O(base) and the generated part) beside the file and validate it (O(validate));
    keep a backup and rename the candidate over the file (atomic); reload (O(reload_command)); check
    that a new HAProxy worker serves the new file; remove the certificate files no longer bound;
    record when the model was read; release the lock."
  - Which model is newer is decided by the cluster's resourceVersion (C(source.resource_version)) when
    both were read from the same API server, compared as integers (Kubernetes calls them opaque;
    an etcd-backed API server hands out etcd's revision, which only grows; a cluster rebuilt or
    restored from an older etcd backup behind the same server needs O(force) once). Otherwise the
    controllers' clocks decide (C(source.read_at)), and a recorded time more than 60 seconds ahead of
    this host's clock when it was recorded is ignored with a warning. A C(<path>.portico-state)
    that is malformed (not JSON, a time that is not a finite number, a resourceVersion that is not
    a decimal int64) counts as absent, with a warning.
  - The new worker is recognised on HAProxy's stats socket (O(runtime_socket)), where only it
    answers after a reload. Its pid differs from the worker's before the reload, and
    C(show backend) lists every backend of the new file. A TCP connect to a frontend is not
    enough, as the old worker may still answer it.
  - When the new file differs from the installed one in server lines only (a node joins, leaves,
    starts or stops draining, or a Local-policy backend's set of nodes moves), no reload is needed.
    The module reads what HAProxy runs (C(show servers state)), checks that it is what the installed
    file says, applies the changes through the runtime API (C(add server), C(enable health),
    C(set server ... state ready), C(set server ... weight), C(set server ... state maint),
    C(del server)), reads the running state again and compares it with the new file, and only then
    installs the new file, without a reload. A refused command or any difference falls back to the
    validated reload, and RV(reload_reason) says why.
  - A removed server that still has connections stays in maintenance (no new connections) until
    they finish; a later sync deletes it, and a reload or restart never brings it back, as the file
    does not have it. A draining node (C(weight 0), see C(haproxy_sync_drain_seconds)) that no
    connection uses any more (C(show stat)) is removed at once rather than at the end of its drain.
  - Everything else (frontends, backends, their settings, certificates, the base configuration, a
    node with a DNS name as its address, the servers of a C(balance first) backend, whose choice
    follows server ids that a runtime change cannot keep as a reload numbers them) is validated and
    reloaded.
  - If the reload fails or no new worker serves the new file within O(reload_timeout), the
    previous file is put back (also with O(backup=false), as it is kept in memory), HAProxy is
    reloaded again, and the module fails saying what happened.
  - Nothing changes when the new file equals the current one and every certificate file is
    already in place; then nothing is written, validated or reloaded.
  - The action plugin runs on the controller; it unseals O(sealed_certificates) in memory and
    sends them with pipelining (on the connection's standard input), never through a file.
author:
  - Portico maintainers (@portico-k8s)
attributes:
  action:
    description: An action plugin runs on the controller first.
    support: full
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - Nothing is locked, written, reloaded or removed. The candidate is validated in a temporary
        directory with the certificates it binds, which is removed afterwards.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The difference of the configuration file, and the certificate files by name (never their content).
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  path:
    description: The HAProxy configuration file.
    type: path
    default: /etc/haproxy/haproxy.cfg
  base:
    description:
      - The operator's part of the file (C(global), C(defaults), own sections), already rendered
        for this host; the P(portico.k8s.haproxy_sync#role) role renders its
        C(haproxy_sync_base_template) with the host's variables.
    type: str
    required: true
  model:
    description: The routing model, the C(model) result of M(portico.k8s.nodeport_info).
    type: dict
    required: true
  bind_address:
    description: The address frontends bind, unless a service names its own; V(*) is every address.
    type: str
    default: '*'
  cert_dir:
    description:
      - Directory of the TLS certificate files (mode C(0700); each file C(0600)).
    type: path
    default: /etc/haproxy/portico-certs
  certificates:
    description:
      - The TLS bundles the model's certificates need, file name to PEM text (chain, then key).
        Never logged or returned.
      - With the action plugin, give O(sealed_certificates) and O(seal_key) instead.
    type: dict
  sealed_certificates:
    description:
      - The C(sealed_certificates) result of M(portico.k8s.nodeport_info); the action plugin unseals
        them with O(seal_key) on the controller and passes them as O(certificates).
    type: dict
  seal_key:
    description: The key O(sealed_certificates) were sealed with (the module's O(portico.k8s.nodeport_info#module:seal_key)).
    type: str
  owner:
    description: Owner of the file and of the certificate files; unset, the current file's (or the user the module runs as).
    type: str
  group:
    description: Group of the file and of the certificate files; unset, the current file's (or that user's group).
    type: str
  mode:
    description: Mode of the file, as an octal string.
    type: str
    default: '0644'
  backup:
    description:
      - Keep a copy of the previous file beside it (C(<path>.<pid>.<time>~)) when it changes.
      - The copy is written to a temporary name, synced to disk and renamed, so a full disk or a
        killed run never leaves a partial or empty one; without room for it, the file is not changed.
    type: bool
    default: true
  keep_backups:
    description:
      - How many of those copies to keep, the newest (by modification time); older ones, empty ones
        (left by earlier versions on a full disk) and temporary ones of a run that died are removed
        after each new copy. At least 1.
    type: int
    default: 5
    version_added: 0.3.0
  validate:
    description:
      - The command that validates the candidate; C(%s) is replaced by its path. Run without a shell.
      - Its program is looked up on E(PATH), then in C(/sbin), C(/usr/sbin) and C(/usr/local/sbin); when it is not
        found the step fails (in check mode too) and says so.
    type: str
    default: haproxy -c -f %s
  reload_command:
    description: The command that reloads HAProxy, split like a shell would split it but run without one.
    type: str
    default: systemctl reload haproxy
  runtime_socket:
    description:
      - HAProxy's stats socket (a UNIX socket path), asked after the reload which worker serves.
      - Unset, the first C(stats socket) of O(base). If there is none, the module only waits until a
        frontend accepts connections, and warns that the old worker could have answered.
    type: path
  reload_timeout:
    description:
      - Seconds the reload command may take; one that takes longer is killed (with every process
        it started in its process group), the previous file is put back and reloaded, and the
        module fails saying so.
      - Then as many seconds to wait for the new worker after the reload.
    type: int
    default: 30
  lock_timeout:
    description: Seconds to wait for another run to release this host's lock before failing.
    type: int
    default: 300
  lock_stale_seconds:
    description:
      - The lock records who holds it (host, boot id, process id and the process's start time). A
        lock whose holder is gone (no such process, a process id now used by another program, or
        the host restarted since) is taken away at once, with a warning that says so; one whose
        holder still runs is waited for (O(lock_timeout)).
      - A lock whose holder cannot be asked from here (taken on another host name or in another pid
        namespace, or by an older version), or a lock that names no holder, is taken away when
        older than this many seconds (a lock that names no holder, after 30 seconds).
    type: int
    default: 1800
  max_removal_ratio:
    description:
      - The safety valve. Refuse (before anything changes, listing what would go) a new file that would
        remove more than this share of the backends of the current file's generated part, or leave more
        than this share fewer nodes that serve (a node serves when it is on a server line with a weight
        above 0 in at least one backend; a draining node does not). Nodes are counted rather than
        server lines, so a Local-policy service whose endpoints move or scale trips nothing while other
        backends keep those nodes, and nodes that others replace take nothing away.
      - Removals over several runs count together. The host records what it served after each good
        run; a new file that would leave fewer than (1 - this share) of the most backends it served
        within the last O(removal_window) seconds is refused too. So 12, 7, 4, 2 backends in four runs
        stops at 4 with the default; services that go more slowly pass, at most this share per window.
      - Serving nodes that fall that far over several runs, each under this share, give a warning
        rather than a refusal, as nodes come and go with autoscaling, and HAProxy health-checks each
        one itself.
      - O(force) installs anyway and starts the record afresh.
    type: float
    default: 0.5
  removal_window:
    description:
      - Seconds over which the safety valve adds up removals (see O(max_removal_ratio)); V(0) compares
        with the current file only.
    type: int
    default: 3600
    version_added: 0.3.0
  force:
    description: Skip the safety valve, and install this model even where a newer one is installed.
    type: bool
    default: false
  runtime_changes:
    description:
      - Apply changes of servers only through HAProxy's runtime API, without a reload (see above).
        Needs the stats socket at C(level admin).
      - V(false) reloads for every change.
    type: bool
    default: true
    version_added: 0.2.0
  slowstart:
    description:
      - The time a server that comes up (a node that joins, or one whose health check passes again)
        takes to reach its full weight, written on every server line (C(slowstart)); unset, at once.
      - A number with an optional unit (C(us), C(ms), C(s), C(m), C(h), C(d)); milliseconds without one.
    type: str
    version_added: 0.2.0
  nonlocal_bind:
    description:
      - Bind the own addresses of LoadBalancer Services (see M(portico.k8s.nodeport_info) option
        O(portico.k8s.nodeport_info#module:address_pools)) with HAProxy's C(transparent) bind option, so
        that an address that is on another load balancer (a floating address) can be bound here too.
      - V(false) binds them plainly; the address must then be on this host, or the kernel must allow
        it (C(sysctl net.ipv4.ip_nonlocal_bind=1), C(net.ipv6.ip_nonlocal_bind=1)).
    type: bool
    default: true
    version_added: 0.3.0
  load_balancer:
    description: The name of this host in messages; the action plugin sets it to the inventory name.
    type: str
  keepalived:
    description:
      - Manage keepalived on this load balancer too, in the same call and under the same lock, once
        HAProxy serves the model. keepalived moves the floating addresses (O(keepalived.vips), and the
        own addresses of the LoadBalancer Services the model serves) between the load balancers with
        VRRP (version 3, which takes sub-second advert intervals) over unicast.
      - Its C(track_script) (O(keepalived.check_script), written by this module for the host's own
        Python) fails when HAProxy does not answer on its stats socket, or when this host refused the
        current configuration; keepalived then gives the addresses up. A refusal (the new file failed
        to validate, the safety valve, a failed reload) leaves the mark C(<path>.portico-refused),
        which the next good sync on this host removes.
      - The new C(keepalived.conf) is validated (O(keepalived.validate)), renamed into place and
        keepalived reloaded (O(keepalived.reload_command)), never restarted. When the reload fails,
        the previous file is put back and reloaded.
      - Check mode validates the new file with the new check in a temporary directory and shows both
        in the diff.
    type: dict
    version_added: 0.3.0
    suboptions:
      path:
        description: keepalived's configuration file.
        type: path
        default: /etc/keepalived/keepalived.conf
      interface:
        description: The network interface that carries the floating addresses and the VRRP adverts.
        type: str
        required: true
      address:
        description: This host's own address on O(keepalived.interface), the source of its VRRP adverts.
        type: str
        required: true
      peers:
        description: The own addresses of the other load balancers (unicast VRRP; multicast is often filtered).
        type: list
        elements: str
        default: []
      router_id:
        description: The VRRP virtual router id, 1 to 255, the same on every load balancer and unique on the network.
        type: int
        default: 51
      priority:
        description:
          - This host's VRRP priority, 1 to 254. With O(keepalived.preempt=false) it decides only which host
            takes the addresses when none holds them.
        type: int
        default: 100
      advert_interval:
        description:
          - Seconds between VRRP adverts. A holder whose health check fails hands over at once; a holder that
            goes silent (the host down, its link cut) is replaced after about three adverts.
        type: float
        default: 0.5
      preempt:
        description:
          - V(false) (the default) lets the host that holds the addresses keep them when a host of higher priority
            comes back, so a recovering host takes no traffic before it is synced.
        type: bool
        default: false
      vips:
        description: The floating addresses clients use, each an address or an address with its prefix length.
        type: list
        elements: str
        default: []
      service_addresses:
        description: Float the own addresses of the LoadBalancer Services the model serves too.
        type: bool
        default: true
      check_script:
        description: Where the health check keepalived runs is written (root-owned, mode 0755).
        type: path
        default: /etc/keepalived/portico-haproxy-check
      validate:
        description: The command that checks a candidate file; C(%s) is its path.
        type: str
        default: keepalived -t -f %s
      reload_command:
        description: The command that makes keepalived read its file again.
        type: str
        default: systemctl reload keepalived
      peers_updated:
        description:
          - Whether another load balancer already serves this run's model. Only then does a refusal here
            (C(<path>.portico-refused)) take the floating addresses away from this host; a refusal on the first
            host of a rollout leaves every host on the same configuration, and the addresses where they are.
          - The role sets it from the hosts of earlier batches that took the model.
        type: bool
        default: true
  metrics:
    description:
      - A frontend of this load balancer's own that serves HAProxy's Prometheus exporter at C(/metrics)
        and its stats page at C(/stats) (read-only), placed after O(base) and validated with the rest.
        Unset, or without C(address), there is none.
      - It must not take an address or a port that serves the cluster's Services; the collect step
        leaves its port to no Service (option O(portico.k8s.nodeport_info#module:metrics_ports)).
    type: dict
    version_added: 0.3.0
    suboptions:
      address:
        description:
          - The one address it binds, a loopback or management address (never a wildcard, O(bind_address),
            or a LoadBalancer Service's own address).
        type: str
      port:
        description: The port it binds.
        type: int
        default: 8404
      users:
        description:
          - Basic auth. Each a dict with C(name) and C(password), a crypt(3) hash (C(openssl passwd -6)), never
            the password itself. The hashes are written to the file (give it mode C(0640) or C(0600)) and never
            shown in a diff or the log.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: The user name.
            type: str
            required: true
          password:
            description: Its crypt(3) hash.
            type: str
            required: true
      allow:
        description:
          - The source networks (CIDR) or addresses allowed to connect; a connection from anywhere else is
            refused before a byte is read. Empty, any source.
          - On an address that is not loopback, O(metrics.users) or this is required.
        type: list
        elements: str
        default: []
  textfile:
    description:
      - Write what this run did here, in the node_exporter textfile-collector format (atomically, mode
        C(0644)), after every run but a check, with success or failure, when a sync last succeeded (a failed run
        keeps that time), the counts of the model served, its generation, and reloads against changes
        applied through the runtime API. Unset, no file.
      - The directory must exist (node_exporter's C(--collector.textfile.directory), for example
        C(/var/lib/prometheus/node-exporter)); the file name must end in C(.prom).
    type: path
    version_added: 0.3.0
notes:
  - Certificates travel in the module's arguments; the action plugin turns pipelining on for
    this call and refuses to run without it (for example with C(ANSIBLE_KEEP_REMOTE_FILES) or a
    become method that cannot pipeline) when there are certificates to send.
seealso:
  - module: portico.k8s.nodeport_info
'''

EXAMPLES = r'''
- name: Read the routing model once, on the controller
  portico.k8s.nodeport_info:
    seal_key: "{{ seal_key }}"
  register: routing
  delegate_to: localhost
  run_once: true

- name: Bring HAProxy to it on each load balancer
  portico.k8s.haproxy_config:
    base: "{{ lookup('ansible.builtin.template', 'base.cfg.j2') }}"
    model: "{{ routing.model }}"
    sealed_certificates: "{{ routing.sealed_certificates }}"
    seal_key: "{{ seal_key }}"
    reload_command: systemctl reload haproxy
  become: true
'''

RETURN = r'''
msg:
  description: What happened on this host, in one sentence.
  returned: always
  type: str
  sample: 'lb-a: /etc/haproxy/haproxy.cfg is up to date; nothing was changed.'
path:
  description: The configuration file.
  returned: always
  type: str
reloaded:
  description: Whether HAProxy was reloaded with the new file.
  returned: always
  type: bool
applied_at_runtime:
  description: Whether the new file's server changes were applied through the runtime API, without a reload.
  returned: always
  type: bool
  version_added: 0.2.0
runtime_changes:
  description: How many server changes (added, removed, reweighted) were applied through the runtime API (in check mode, would be).
  returned: always
  type: int
  version_added: 0.2.0
reload_reason:
  description: Why the change needed a reload rather than the runtime API (in check mode, would need); null without a reload.
  returned: always
  type: str
  sample: 'frontends, backends or their settings changed (frontend shop.web.8443 is new)'
  version_added: 0.2.0
leaving:
  description:
    - Removed servers (C(backend/server)) that still finish their connections in maintenance. They
      are recorded beside the file, and a later sync deletes them once their connections are done.
  returned: always
  type: list
  elements: str
  version_added: 0.2.0
drained:
  description:
    - Draining nodes (see C(draining_nodes) of the model) that no connection used any more, so they
      were removed at once instead of at the end of their drain time.
  returned: when there were any
  type: list
  elements: str
  version_added: 0.2.0
worker:
  description: The pid of the HAProxy worker that serves the new file, when the stats socket said so.
  returned: when reloaded
  type: str
restored:
  description: Whether the previous file was put back after a failed reload.
  returned: always
  type: bool
backup_file:
  description: The copy of the previous file.
  returned: when the file changed and O(backup) is true
  type: str
outdated:
  description: Whether this host already had a model read later than this one, and was left alone.
  returned: always
  type: bool
installed_model_time:
  description: When the model installed here before this call was read from the cluster, or null.
  returned: always
  type: float
backends_removed:
  description: Backends of the current file's generated part that the new file does not have.
  returned: always
  type: list
  elements: str
certificates_changed:
  description: Certificate files that were new or different (in check mode, would be).
  returned: always
  type: list
  elements: str
certificates_removed:
  description: Certificate files removed after the reload because the new file does not bind them (in check mode, would be).
  returned: always
  type: list
  elements: str
validation:
  description: Output of the validate command.
  returned: when the candidate was validated
  type: str
lock_waited:
  description: Seconds spent waiting for another run's lock.
  returned: always
  type: float
stale_lock_removed:
  description: Whether a lock left by a run that died was taken away first (a warning says whose, and why).
  returned: always
  type: bool
floating_addresses:
  description: The addresses keepalived floats between the load balancers (with O(keepalived)).
  returned: when keepalived is given
  type: list
  elements: str
  sample: [192.0.2.100/32, 192.0.2.200/32]
keepalived_changed:
  description: Whether keepalived.conf or its health check changed (or would, in check mode).
  returned: when keepalived is given
  type: bool
generation:
  description:
    - The generation of O(model) (see M(portico.k8s.nodeport_info)), which this host records beside the file
      (C(<path>.portico-state)) once it serves it.
  returned: always
  type: str
  version_added: 0.3.0
'''

import hashlib
import os
import shlex
import shutil
import socket
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portico.k8s.plugins.module_utils._certificates import CertificateError, install, same_content
from ansible_collections.portico.k8s.plugins.module_utils._config import (
    add_peak,
    compose,
    generated_part,
    left_out,
    peak_of,
    probe_address,
    removal_problem,
    serving_nodes,
    shrinking,
    stats_socket,
    stored_certificates,
    unused_certificates,
)
from ansible_collections.portico.k8s.plugins.module_utils._files import (
    keep_backup,
    owner_ids,
    prune_backups,
    replace_atomically,
)
from ansible_collections.portico.k8s.plugins.module_utils._haproxy import MalformedConfig, UnsafeValue, render
from ansible_collections.portico.k8s.plugins.module_utils import _metrics, _report
from ansible_collections.portico.k8s.plugins.module_utils._lock import (
    LOCK_SUFFIX,
    LockError,
    installed_mark,
    installed_state,
    later_than,
    model_mark,
    newer_than,
    record_state,
    release,
    take,
)
from ansible_collections.portico.k8s.plugins.module_utils._runtime import (
    CommandTimeout,
    RuntimeAPIError,
    Session,
    ask,
    backends as running_backends,
    run_command,
    wait_for_new_worker,
    wait_for_port,
    worker_pid,
)
from ansible_collections.portico.k8s.plugins.module_utils._keepalived_step import (
    KeepalivedFailed,
    KeepalivedStep,
    clear_refused,
    mark_refused,
)
from ansible_collections.portico.k8s.plugins.module_utils import _servers


_NOT_ECHOED = ('model', 'base', 'certificates', 'sealed_certificates', 'seal_key', 'metrics')


class StepFailed(Exception):
    """The host step stops here; str() is the whole message."""


class HostStep(object):
    """One load balancer's sync; run() returns the result, or raises StepFailed with it in .result."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check = module.check_mode
        self.path = self.params['path']
        self.name = self.params['load_balancer'] or socket.gethostname()
        self.result = dict(changed=False, path=self.path, reloaded=False, restored=False, outdated=False,
                           backends_removed=[], certificates_changed=[], certificates_removed=[],
                           lock_waited=0.0, stale_lock_removed=False, installed_model_time=None,
                           applied_at_runtime=False, runtime_changes=0, reload_reason=None, leaving=[])
        self.temporary = []
        # this run is in the textfile (or must not be: another run held the lock)
        self.recorded = False
        # (current, candidate) as _servers.parse read them, once the runtime path is considered
        self.files = None
        self.metrics = None
        # what the model given makes this host serve, before idle draining nodes leave it
        self.result['generation'] = _report.generation(self.params['model'])
        self.counts = None

    def fail(self, message):
        raise StepFailed('%s: %s' % (self.name, message))

    def run(self):
        try:
            self.metrics = _metrics.settings(self.params['metrics'])
        except _metrics.MetricsError as exc:
            self.fail('%s; nothing was changed' % exc)
        textfile = self.params['textfile']
        if textfile and not textfile.endswith('.prom'):
            self.params['textfile'] = None
            self.fail('the textfile %s (haproxy_sync_textfile) must end in .prom, as node_exporter reads only those; '
                      'nothing was changed' % textfile)
        if self.params['keepalived']:
            self.prepare_floating()
        token, lock = None, self.path + LOCK_SUFFIX
        directory = os.path.dirname(self.path) or '.'
        if not os.path.isdir(directory):
            problem = 'is not a directory' if os.path.lexists(directory) else 'does not exist'
            self.fail('the directory %s of %s %s, so %s: create it (the HAProxy package does) or set path; nothing '
                      'was changed here' % (directory, self.path, problem, 'a real run would fail' if self.check
                                            else 'the new file cannot be written'))
        try:
            if not self.check:
                try:
                    token, broken, self.result['lock_waited'] = take(
                        lock, self.params['lock_timeout'], self.params['lock_stale_seconds'])
                except LockError as exc:
                    # another run holds this host: its run records itself, this one says nothing of the host
                    self.recorded = True
                    self.fail(str(exc))
                self.result['stale_lock_removed'] = bool(broken)
                if broken:
                    self.module.warn(broken)
            try:
                try:
                    message = self.sync()
                except (StepFailed, OSError, IOError, ValueError) as exc:
                    self.refused(str(exc))
                    raise
                # a host that already runs a newer model keeps the keepalived file of that model
                if self.params['keepalived'] and not self.result['outdated']:
                    message += ' ' + self.floating()
            except (StepFailed, OSError, IOError, ValueError):
                # under the lock: runs that follow each other count in order
                self.record_run(False)
                raise
            self.result['msg'] = message
            self.record_run(True)
            return self.result
        finally:
            try:
                if token:
                    release(lock, token)
            finally:
                for path in self.temporary:
                    if os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
                    elif os.path.lexists(path):
                        os.unlink(path)

    def prepare_floating(self):
        """keepalived's settings, addresses and file checked before anything changes: a bad one changes nothing."""
        options = dict(self.params['keepalived'], reload_timeout=self.params['reload_timeout'])
        runtime = self.params['runtime_socket'] or stats_socket(self.params['base'])
        try:
            if not runtime:
                raise KeepalivedFailed('keepalived\'s health check asks HAProxy\'s stats socket, and the base '
                                       'configuration has none (nor is runtime_socket set); nothing was changed')
            self.keepalived = KeepalivedStep(self.module, options, self.params['model'], self.path, runtime, self.name,
                                             self.check)
        except KeepalivedFailed as exc:
            self.fail(str(exc))

    def refused(self, problem):
        """This host did not take the model: when others already serve it, its floating addresses go to them."""
        if self.params['keepalived'] and not self.check and self.params['keepalived']['peers_updated']:
            mark_refused(self.path, problem)

    def floating(self):
        """keepalived.conf and its health check brought to the model; what to add to the message."""
        step = self.keepalived
        try:
            changed, message, diffs = step.run()
        except KeepalivedFailed as exc:
            self.fail(str(exc))
        self.result['floating_addresses'] = [str(a) for a in step.addresses]
        self.result['keepalived_changed'] = changed
        if not self.check and clear_refused(self.path):
            changed, message = True, message + ' This host serves the current configuration again.'
        if changed:
            self.result['changed'] = True
        if diffs and self.module._diff:
            self.result['diff'] = list(self.result.get('diff') or []) + diffs
        return 'keepalived: ' + message

    def render(self, cert_dir):
        try:
            return compose(self.base(), render(self.params['model'], self.params['bind_address'], cert_dir,
                                               self.params['slowstart'] or None, self.params['nonlocal_bind']))
        except (UnsafeValue, MalformedConfig) as exc:
            self.fail('the model was refused, so %s was not changed: %s' % (self.path, exc))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            self.fail('the model is not one portico.k8s.nodeport_info returns (%s: %s); %s was not changed'
                      % (type(exc).__name__, exc, self.path))

    def base(self):
        """The operator's base configuration, then this host's metrics frontend (if any)."""
        section = _metrics.render(self.metrics)
        return self.params['base'].strip() + ('\n\n' + section if section else '')

    def sync(self):
        model, params = self.params['model'], self.params
        self.mark = model_mark(model)
        self.installed, warnings = installed_mark(self.path)
        for warning in warnings:
            self.module.warn(warning)
        self.result['installed_model_time'] = self.installed['model_read_at']
        later = None if params['force'] else later_than(self.installed, self.mark)
        if later:
            self.result['outdated'] = True
            return ('%s already has a model %s; nothing is changed here (haproxy_sync_force=true installs this '
                    'run\'s model anyway).' % (self.name, later))
        try:
            with open(self.path, 'rb') as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        except (IOError, OSError) as exc:
            self.fail('cannot read %s: %s; nothing was changed' % (self.path, exc))
        self.runtime = params['runtime_socket'] or stats_socket(params['base'])
        self.drain_idle_nodes()
        model = self.params['model']
        self.counts = _report.counts(model)
        candidate = self.render(params['cert_dir']).encode('utf-8')
        certificates = self.certificates()
        wanted = [c['file'] for c in model.get('certificates') or []]
        stored = self.stored = stored_certificates(params['cert_dir'])
        self.result['certificates_removed'] = unused_certificates(stored, wanted)
        changed_certificates = sorted(
            name for name in wanted if not same_content(os.path.join(params['cert_dir'], name), certificates[name]))
        self.result['certificates_changed'] = changed_certificates
        if candidate == current and not changed_certificates and installed_state(self.path).get('unverified') is None:
            self.result['certificates_removed'] = []
            self.saw()
            self.note_serving()
            return '%s: %s is up to date; nothing was changed.%s' % (self.name, self.path, self.finish_leaving())
        current_text = (current or b'').decode('utf-8', 'replace')
        old_backends, dummy, foreign = generated_part(current_text.split('\n'), None)
        new_backends = [b['name'] for b in model['backends']]
        self.result['backends_removed'] = left_out(old_backends, new_backends)
        # the safety valve counts backends, the nodes that serve, and what this host served lately
        serving = serving_nodes(current_text.split('\n')), serving_nodes(candidate.decode('utf-8').split('\n'))
        self.served = len(new_backends), len(serving[1])
        peak = peak_of(installed_state(self.path).get('peaks'), time.time(), params['removal_window'])
        problem = removal_problem(self.path, old_backends, new_backends, params['max_removal_ratio'], params['force'],
                                  serving, peak, params['removal_window'])
        fewer = None if params['force'] else shrinking(self.path, serving[1], peak, params['max_removal_ratio'],
                                                       params['removal_window'])
        if fewer and not problem:
            self.module.warn(fewer)
        if problem:
            self.fail(problem)
        if foreign:
            self.module.warn('%s holds lines that Portico never writes in its generated part (%s): the mark of a '
                             'configuration injected through cluster data into a file an older version wrote. This '
                             'sync replaces them; check the host for what they may have run.'
                             % (self.path, ', '.join('line %d: %r' % item for item in foreign)))
        self.result['changed'] = True
        if self.module._diff:
            self.result['diff'] = self.diff(current, candidate, stored, wanted)
        renewed = self.renewed(changed_certificates)
        drained = self.result.get('drained')
        if drained:
            renewed += (' Draining node(s) no connection uses any more %s removed at once: %s.'
                        % ('would be' if self.check else 'were', ', '.join(drained)))
        if self.check:
            return '%s: %s%s' % (self.name, self.check_candidate(candidate, current, certificates), renewed)
        return '%s: %s%s' % (self.name, self.apply(candidate, current, certificates), renewed)

    def saw(self):
        """Nothing to change, with a newer model than the one recorded: record that this host runs it, so
        an older run that waited on the lock leaves the host alone."""
        if not self.check and newer_than(self.mark, self.installed):
            record_state(self.path, self.mark, leaving=installed_state(self.path).get('leaving'))
            self.installed = self.mark

    def serves(self, installed_at):
        """What the installed file serves, for the record beside it: the model's generation, source and counts."""
        return {'generation': self.result['generation'], 'installed_at': installed_at,
                'source': _report.source_of(self.params['model']), 'counts': self.counts}

    def note_serving(self):
        """An unchanged file whose record does not say what it serves (an older version wrote it, or
        the same file came from another model): say so, keeping when it was installed."""
        state = installed_state(self.path)
        recorded = state.get('serves') if isinstance(state.get('serves'), dict) else {}
        if self.check or recorded.get('generation') == self.result['generation']:
            return
        record_state(self.path, self.installed, leaving=state.get('leaving'),
                     serves=self.serves(recorded.get('installed_at')))

    def record_run(self, ok):
        """Write this run to the textfile (node_exporter's textfile collector); a problem is a warning."""
        path = self.params['textfile']
        if not path or self.check or self.recorded:
            return
        self.recorded = True
        try:
            with open(path, 'r') as handle:
                previous = _report.read_textfile(handle.read())
        except (IOError, OSError, UnicodeDecodeError):
            previous = {}
        state = installed_state(self.path)
        serves = state.get('serves') if isinstance(state.get('serves'), dict) else {}
        current = _report.way(self.result) if ok else 'failed'
        outcome = dict(load_balancer=self.name, config=self.path, ok=ok, way=current,
                       runtime_changes=self.result.get('runtime_changes'), generation=serves.get('generation'),
                       model_read_at=state.get('model_read_at'), installed_at=serves.get('installed_at'),
                       counts=self.counts if ok and current != 'outdated' else None)
        text = _report.render_textfile(_report.next_host_record(previous, outcome, round(time.time(), 3)))
        try:
            replace_atomically(path, lambda out: out.write(text.encode('utf-8')), 0o644)
        except (IOError, OSError) as exc:
            self.module.warn('Cannot write the sync metrics to %s (haproxy_sync_textfile): %s' % (path, exc))

    def drain_idle_nodes(self):
        """Leave out the draining nodes no connection uses any more: nothing is left to drain."""
        model = self.params['model']
        if not self.runtime or not self.params['runtime_changes'] or not isinstance(model.get('draining_nodes'), list):
            return
        draining = [node.get('name') for node in model['draining_nodes']
                    if isinstance(node, dict) and isinstance(node.get('name'), str)]
        if not draining:
            return
        backends = [b.get('name') for b in model.get('backends') or [] if isinstance(b, dict)]
        try:
            counts = _servers.sessions(ask(self.runtime, 'show stat -1 4 -1', timeout=10.0), backends)
        except (RuntimeAPIError, _servers.StateError):
            return  # then they drain for their whole time
        done = _servers.idle(draining, counts)
        if done:
            self.result['drained'] = done
            self.params['model'] = dict(model, draining_nodes=[
                node for node in model['draining_nodes'] if not (isinstance(node, dict) and node.get('name') in done)])

    def finish_leaving(self):
        """Delete the servers removed earlier whose last connections have finished; what to add to the message."""
        state = installed_state(self.path)
        leaving = [target for target in state.get('leaving') or [] if _servers.is_target(target)]
        if self.check or not leaving or not self.runtime:
            return ''
        still = []
        try:
            with Session(self.runtime) as session:
                for target in leaving:
                    refused = _servers.refusal('del server', session.send('del server ' + target))
                    if refused and _servers.STILL_CONNECTED in refused:
                        still.append(target)
        except RuntimeAPIError:
            return ''
        record_state(self.path, self.installed, leaving=still)
        self.result['leaving'] = still
        gone = len(leaving) - len(still)
        if not gone:
            return ''
        self.result['changed'] = True
        return ' %d removed server(s) finished their connections and were deleted from the running HAProxy.' % gone

    def certificates(self):
        """file -> PEM bytes of every certificate the model binds, or a failure naming the missing ones."""
        given = self.params['certificates'] or {}
        wanted = self.params['model'].get('certificates') or []
        missing = [c.get('secret', c['file']) for c in wanted if c['file'] not in given]
        if missing:
            self.fail('the model terminates TLS with %s, but no certificate bundle was given for it; %s was not '
                      'changed' % (', '.join(missing), self.path))
        return dict((c['file'], given[c['file']].encode('ascii')) for c in wanted)

    def renewed(self, changed):
        if not changed:
            return ''
        names = [c.get('secret', c['file']) for c in self.params['model'].get('certificates') or [] if c['file'] in changed]
        return ' New or renewed certificates: %s.' % ', '.join(names)

    def diff(self, current, candidate, stored, wanted):
        diffs = []
        if current != candidate:
            # the metrics users' password hashes are never shown
            diffs.append(dict(before_header=self.path, after_header=self.path,
                              before=_metrics.redact((current or b'').decode('utf-8', 'replace')),
                              after=_metrics.redact(candidate.decode('utf-8'))))
        if sorted(stored) != sorted(wanted):
            header = '%s (certificate files, by name)' % self.params['cert_dir']
            diffs.append(dict(before_header=header, after_header=header,
                              before=''.join(name + '\n' for name in sorted(stored)),
                              after=''.join(name + '\n' for name in sorted(wanted))))
        return diffs

    def validate_words(self):
        """The validate command split into words, its program found (PATH, then the sbin directories)."""
        try:
            words = shlex.split(self.params['validate'])
        except ValueError as exc:
            words, problem = None, 'cannot be split into words (%s)' % exc
        if words == []:
            problem = 'is empty'
        if not words:
            self.fail('the validate command %r %s; set validate (haproxy_sync_validate_command); %s'
                      % (self.params['validate'], problem, self.unchanged()))
        program = words[0]
        found = self.module.get_bin_path(program) if os.sep not in program else (
            program if os.path.isfile(program) and os.access(program, os.X_OK) else None)
        if not found:
            where = ('not on PATH, nor in /sbin, /usr/sbin, /usr/local/sbin' if os.sep not in program
                     else 'no executable file there')
            self.fail('the validate command\'s program %r was not found on this host (%s), so the new '
                      'configuration cannot be checked; install HAProxy or set validate '
                      '(haproxy_sync_validate_command); %s' % (program, where, self.unchanged()))
        return [found] + words[1:]

    def unchanged(self):
        return ('a real run would fail the same way and change nothing' if self.check
                else '%s was not changed' % self.path)

    def shown_validate(self):
        """The validate command as an operator reads it: the candidate's temporary path is no use to them."""
        return self.params['validate'].replace('%s', '<candidate>')

    def validate(self, candidate_path):
        """(rc, output) of the validate command on the candidate file; output says something even when it is empty."""
        argv = [word.replace('%s', candidate_path) for word in self.validate_words()]
        rc, out, err = run_command(self.module, argv)
        self.result['validation'] = (out + err).strip()
        output = (err or out).strip() or 'no output'
        if rc == 127:
            output = 'exit 127 means a command was not found: %s' % output
        return rc, output

    def check_candidate(self, candidate, current, certificates):
        """Check mode: validate the candidate with its certificates in a temporary directory."""
        directory = tempfile.mkdtemp(prefix='portico-check.')
        self.temporary.append(directory)
        try:
            install(os.path.join(directory, 'certs'), dict((n, t.decode('ascii')) for n, t in certificates.items()))
        except CertificateError as exc:
            self.fail('cannot put the TLS certificates in place for the check: %s' % exc)
        text = self.render(os.path.join(directory, 'certs'))
        path = os.path.join(directory, 'haproxy.cfg')
        with open(path, 'wb') as handle:
            handle.write(text.encode('utf-8'))
        rc, output = self.validate(path)
        if rc != 0:
            self.fail('the new configuration would be refused by \'%s\' (exit %d), and a real run would leave the '
                      'current one in place: %s' % (self.shown_validate(), rc, output))
        changes, why = self.runtime_plan(current, candidate)
        if changes is not None:
            try:
                why = self.disagreement(self.running(), self.files[0]['backends'])
            except (RuntimeAPIError, _servers.StateError) as exc:
                why = 'the runtime API failed: %s' % exc
        if why is None:
            self.result['runtime_changes'] = len(changes)
            way = ('it would be applied through the runtime API without a reload: %s' % _count(changes)
                   if changes else 'only its comments change, so it would be installed without a reload')
        else:
            self.result['reload_reason'] = why
            way = 'HAProxy would be reloaded, because %s' % why
        return 'the new %s passes the validate command: %s; %s.' % (self.path, self.result['validation'], way)

    def runtime_plan(self, current, candidate):
        """(server changes, None) when the running HAProxy can take the new file without a reload, else (None, why)."""
        params = self.params
        if not params['runtime_changes']:
            return None, 'runtime changes are turned off (haproxy_sync_runtime_changes)'
        if current is None:
            return None, 'there was no configuration file yet'
        if self.result['certificates_changed']:
            return None, 'certificates changed'
        if installed_state(self.path).get('unverified') is not None:
            return None, 'the installed file was never seen serving'
        if not self.runtime:
            return None, 'there is no stats socket to apply server changes on'
        try:
            # both files read once, for the plan and for the checks of the running state
            self.files = _servers.parse(current.decode('utf-8')), _servers.parse(candidate.decode('utf-8'))
        except UnicodeDecodeError:
            return None, 'the current file is not UTF-8'
        return _servers.plan(*self.files)

    def running(self):
        """What HAProxy runs now: {backend: {server: state}}, every backend it has (also those without servers)."""
        state = _servers.read_state(ask(self.runtime, 'show servers state', timeout=10.0))
        for name in running_backends(self.runtime):
            state.setdefault(name, {})
        return state

    def disagreement(self, state, backends):
        """None when HAProxy runs the servers of the installed file's backends, else what differs."""
        problems = _servers.disagreements(state, backends)
        if problems:
            return 'HAProxy does not run what %s says (%s)' % (self.path, '; '.join(problems))
        return None

    def apply_at_runtime(self, changes):
        """None once the running HAProxy serves the candidate's servers, else why not (the caller then reloads)."""
        new = self.files[1]['backends']
        try:
            before = self.running()
            why = self.disagreement(before, self.files[0]['backends'])
            if why is None:
                why = self.send(changes, before, new)
            if why is None:
                after = self.running()
                problems = _servers.disagreements(after, new)
                if problems:
                    why = 'after the runtime changes HAProxy does not run what the new file says (%s)' % '; '.join(problems)
        except (RuntimeAPIError, _servers.StateError) as exc:
            why = 'the runtime API failed: %s' % exc
        if why is None:
            self.result['leaving'] = ['%s/%s' % pair for pair in _servers.leaving(after, new)]
        return why

    def send(self, changes, before, new):
        """None once every change was taken, else the refusal."""
        with Session(self.runtime) as session:
            # servers removed earlier whose last connections may have finished since
            for backend, server in _servers.leaving(before, new):
                session.send('del server %s/%s' % (backend, server))
            for change in changes:
                if change['action'] == 'add' and change['server'] in before.get(change['backend'], {}):
                    # it left, still had connections, and comes back before they finished
                    command = 'del server %s/%s' % (change['backend'], change['server'])
                    refused = _servers.refusal(command, session.send(command))
                    if refused and 'No such server' not in refused:
                        return ('server %s/%s left earlier and still finishes its connections, so it cannot be added '
                                'again yet (%s)' % (change['backend'], change['server'], refused))
                for command in _servers.commands(change):
                    answer = session.send(command)
                    refused = _servers.refusal(command, answer)
                    # a removed server keeps its connections, in maintenance, until they finish
                    if refused and not (command.startswith('del server') and _servers.STILL_CONNECTED in refused):
                        return 'HAProxy refused \'%s\': %s' % (command, refused)
        self.result['runtime_changes'] = len(changes)
        return None

    def apply(self, candidate, current, certificates):
        params = self.params
        try:
            reload_argv = shlex.split(params['reload_command'])
        except ValueError as exc:
            self.fail('haproxy_sync_reload_command cannot be split into words (%s); %s was not changed' % (exc, self.path))
        ids = owner_ids(self.path, params['owner'], params['group'])
        before = set(self.stored)
        try:
            self.result['certificates_changed'], dummy = install(
                params['cert_dir'], dict((n, t.decode('ascii')) for n, t in certificates.items()),
                params['owner'], params['group']) if certificates else ([], None)
        except CertificateError as exc:
            self.fail('cannot install the TLS certificates: %s; %s was not changed' % (exc, self.path))
        # key files this call brought: they go again if the new file does not stay
        self.brought = [name for name in self.result['certificates_changed'] if name not in before]
        changes, self.result['reload_reason'] = self.runtime_plan(current, candidate)
        try:
            return self.install(candidate, current, ids, reload_argv, changes)
        except StepFailed:
            self.remove_brought()
            raise

    def remove_brought(self):
        for name in getattr(self, 'brought', []):
            path = os.path.join(self.params['cert_dir'], name)
            if os.path.lexists(path):
                os.unlink(path)

    def install(self, candidate, current, ids, reload_argv, changes):
        params = self.params
        directory = os.path.dirname(self.path) or '.'
        handle, candidate_path = tempfile.mkstemp(dir=directory, prefix='.portico-candidate.')
        self.temporary.append(candidate_path)
        with os.fdopen(handle, 'wb') as out:
            out.write(candidate)
        os.chmod(candidate_path, int(params['mode'], 8))
        if ids is not None:
            os.chown(candidate_path, *ids)
        rc, output = self.validate(candidate_path)
        if rc != 0:
            self.fail('the new %s failed to validate with \'%s\' (exit %d), so the current file stays in place and '
                      'HAProxy was not reloaded: %s' % (self.path, self.shown_validate(), rc, output))
        runtime = self.runtime
        if current is not None and params['backup']:
            try:
                self.result['backup_file'] = self.backup(current)
            except (IOError, OSError) as exc:
                self.fail('cannot keep a backup of %s (%s); it was not changed' % (self.path, exc))
        mode = os.stat(self.path).st_mode & 0o7777 if current is not None else None
        # until the running HAProxy is seen serving it, the file is marked unverified: a run that
        # finds it in place does not take it for done
        record_state(self.path, self.installed, unverified=_digest(candidate))
        read_at = self.mark if self.mark['model_read_at'] is not None or len(self.mark) > 1 else None
        renamed = False
        if changes is not None:
            # the new file is in place (and unverified) before HAProxy changes: a reload or restart by
            # anything else meanwhile loads the new file, and the checks below then see that
            os.rename(candidate_path, self.path)
            self.temporary.remove(candidate_path)
            renamed = True
            why = self.apply_at_runtime(changes)
            if why is None:
                self.result['applied_at_runtime'] = True
                self.done(read_at)
                return self.applied(changes)
            self.result['reload_reason'] = why
        old_worker = worker_pid(runtime) if runtime else None
        try:
            if not renamed:
                os.rename(candidate_path, self.path)
                self.temporary.remove(candidate_path)
            problem = self.reload(reload_argv, runtime, old_worker, [b['name'] for b in params['model']['backends']],
                                  probe_address(params['model'], params['bind_address']))
        except StepFailed:
            raise
        except BaseException as exc:
            problem = 'the reload stopped: %s' % exc
        if problem is None:
            self.result['reloaded'] = True
            self.done(read_at)
            served = ('worker %s serves it' % self.result['worker']) if self.result.get('worker') else 'it serves'
            return 'installed the new %s and reloaded HAProxy, because %s; %s.' % (
                self.path, self.result['reload_reason'], served)
        self.result['certificates_removed'] = []
        self.fail(self.restore(current, ids, mode, reload_argv, runtime, problem))

    def backup(self, current):
        """Keep current as a backup (never partial or empty) and prune to the keep_backups newest; its path."""
        info = os.stat(self.path)
        backup = keep_backup(self.path, current, info.st_mode & 0o7777,
                             (info.st_uid, info.st_gid) if os.geteuid() == 0 else None)
        prune_backups(self.path, self.params['keep_backups'], spare=backup)
        return backup

    def done(self, read_at):
        """The new file serves: record the model's time (and the servers still leaving) and remove the
        certificates it no longer binds."""
        record_state(self.path, read_at if read_at is not None else self.installed,
                     leaving=self.result['leaving'],
                     peaks=add_peak(installed_state(self.path).get('peaks'), time.time(), self.served[0],
                                    self.served[1], self.params['removal_window'], reset=self.params['force']),
                     serves=self.serves(round(time.time(), 3)))
        for name in self.result['certificates_removed']:
            os.unlink(os.path.join(self.params['cert_dir'], name))

    def applied(self, changes):
        if not changes:
            return ('installed the new %s without a reload: only its comments changed, not what HAProxy serves.'
                    % self.path)
        leaving = self.result['leaving']
        return ('applied %s to the running HAProxy through its runtime API and installed the new %s without a '
                'reload.%s' % (_count(changes), self.path, '' if not leaving else
                               ' %d removed server(s) still finish their connections in maintenance (%s); a later '
                               'sync deletes them.' % (len(leaving), ', '.join(leaving[:5]))))

    def reload(self, argv, runtime, old_worker, backends, probe):
        """None once a new worker serves the new file, else why not."""
        try:
            rc, out, err = run_command(self.module, argv, timeout=self.params['reload_timeout'])
        except CommandTimeout as exc:
            return 'the reload command hung: %s (haproxy_sync_reload_timeout)' % exc
        if rc != 0:
            return 'the reload command exited %d: %s' % (rc, (err or out).strip())
        if runtime:
            pid, problem = wait_for_new_worker(runtime, old_worker, backends, self.params['reload_timeout'])
            self.result['worker'] = pid
            return problem
        if probe is None:
            return None
        self.module.warn('No stats socket in the base configuration (and runtime_socket unset): only a TCP connect '
                         'to port %d checked the reload, which the old HAProxy worker could have answered.' % probe[1])
        return wait_for_port(probe[0], probe[1], self.params['reload_timeout'])

    def restore(self, current, ids, mode, argv, runtime, problem):
        """Put the previous file back and reload again; the failure message."""
        if current is None:
            self.brought = []  # the new file stays, and binds them
            return ('Reloading HAProxy failed (%s). There was no previous %s to put back, so the new file stays in '
                    'place, marked unverified (the next run reloads it again). The rollout stops here; the load '
                    'balancers after this one were not changed.' % (problem, self.path))
        try:
            replace_atomically(self.path, lambda out: out.write(current), mode, ids)
        except OSError as exc:
            self.brought = []
            return ('Reloading HAProxy failed (%s), and putting the previous %s back failed too (%s): the new file is '
                    'in place, marked unverified%s. Check HAProxy on this host now.'
                    % (problem, self.path, exc, ', the previous one is %s' % self.result['backup_file']
                       if self.result.get('backup_file') else ''))
        self.result['restored'] = True
        self.remove_brought()
        self.brought = []
        old_worker = worker_pid(runtime) if runtime else None
        again = self.reload(argv, runtime, old_worker, [], None)
        if again is None:
            record_state(self.path, self.installed)
        then = ('The previous configuration was put back and reloaded.' if again is None else
                'The previous configuration was put back, but reloading it failed too (%s); check HAProxy on this '
                'host now.' % again)
        return ('Reloading HAProxy failed (%s). %s The rollout stops here; the load balancers after this one were '
                'not changed.' % (problem, then))


def _count(changes):
    """'3 server changes (2 added, 1 removed)' of a list of server changes."""
    counts = {}
    for change in changes:
        counts[change['action']] = counts.get(change['action'], 0) + 1
    return '%d server change%s (%s)' % (len(changes), '' if len(changes) == 1 else 's', ', '.join(
        '%d %s' % (counts[action], word) for action, word in (
            ('add', 'added'), ('remove', 'removed'), ('weight', 'reweighted')) if action in counts))


def _digest(data):
    return hashlib.sha256(data).hexdigest()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/haproxy/haproxy.cfg'),
            base=dict(type='str', required=True),
            model=dict(type='dict', required=True),
            bind_address=dict(type='str', default='*'),
            cert_dir=dict(type='path', default='/etc/haproxy/portico-certs'),
            certificates=dict(type='dict', no_log=True),
            sealed_certificates=dict(type='dict', no_log=True),
            seal_key=dict(type='str', no_log=True),
            owner=dict(type='str'),
            group=dict(type='str'),
            mode=dict(type='str', default='0644'),
            backup=dict(type='bool', default=True),
            keep_backups=dict(type='int', default=5),
            validate=dict(type='str', default='haproxy -c -f %s'),
            reload_command=dict(type='str', default='systemctl reload haproxy'),
            runtime_socket=dict(type='path'),
            reload_timeout=dict(type='int', default=30),
            lock_timeout=dict(type='int', default=300),
            lock_stale_seconds=dict(type='int', default=1800),
            max_removal_ratio=dict(type='float', default=0.5),
            removal_window=dict(type='int', default=3600),
            force=dict(type='bool', default=False),
            runtime_changes=dict(type='bool', default=True),
            slowstart=dict(type='str'),
            nonlocal_bind=dict(type='bool', default=True),
            load_balancer=dict(type='str'),
            keepalived=dict(type='dict', options=dict(
                path=dict(type='path', default='/etc/keepalived/keepalived.conf'),
                interface=dict(type='str', required=True),
                address=dict(type='str', required=True),
                peers=dict(type='list', elements='str', default=[]),
                router_id=dict(type='int', default=51),
                priority=dict(type='int', default=100),
                advert_interval=dict(type='float', default=0.5),
                preempt=dict(type='bool', default=False),
                vips=dict(type='list', elements='str', default=[]),
                service_addresses=dict(type='bool', default=True),
                check_script=dict(type='path', default='/etc/keepalived/portico-haproxy-check'),
                validate=dict(type='str', default='keepalived -t -f %s'),
                reload_command=dict(type='str', default='systemctl reload keepalived'),
                peers_updated=dict(type='bool', default=True),
            )),
            metrics=dict(type='dict', options=dict(
                address=dict(type='str'),
                port=dict(type='int', default=_metrics.DEFAULT_PORT),
                users=dict(type='list', elements='dict', default=[], options=dict(
                    name=dict(type='str', required=True),
                    password=dict(type='str', required=True, no_log=True),
                )),
                allow=dict(type='list', elements='str', default=[]),
            )),
            textfile=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    if module.params['keep_backups'] < 1:
        module.fail_json(msg='keep_backups must be at least 1 (backup=false keeps none); nothing was changed')
    step = HostStep(module)
    # the model and the base template are large, and the caller has them: not echoed back
    invocation = {'module_args': dict((k, v) for k, v in module.params.items() if k not in _NOT_ECHOED)}
    try:
        result = step.run()
    except StepFailed as exc:
        step.record_run(False)
        module.fail_json(msg=str(exc), invocation=invocation, **step.result)
    except (OSError, IOError, ValueError) as exc:
        step.record_run(False)
        module.fail_json(msg='%s: the sync of %s stopped: %s' % (step.name, step.path, exc), invocation=invocation,
                         **step.result)
    module.exit_json(invocation=invocation, **result)


if __name__ == '__main__':
    main()
