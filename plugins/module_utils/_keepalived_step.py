# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keepalived part of a load balancer's host step: its health check and keepalived.conf put in
place atomically once ``keepalived -t`` accepts them, then keepalived reloaded (never restarted);
the previous file back when the reload fails. Also the mark a host leaves when it refused the
current HAProxy configuration, which makes its health check fail so the floating addresses leave it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex
import shutil
import sys
import tempfile

from ansible_collections.portico.k8s.plugins.module_utils import _keepalived
from ansible_collections.portico.k8s.plugins.module_utils._files import replace_atomically
from ansible_collections.portico.k8s.plugins.module_utils._runtime import CommandTimeout, run_command


class KeepalivedFailed(Exception):
    """The keepalived part stops here; str() says what happened and what was left in place."""


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def mark_refused(haproxy_path, reason):
    """This host did not take the current configuration: its health check fails from now on."""
    replace_atomically(haproxy_path + _keepalived.REFUSED_SUFFIX,
                       lambda out: out.write((reason.strip() + '\n').encode('utf-8', 'replace')), 0o644)


def clear_refused(haproxy_path):
    """True when a refusal mark was removed (this host serves the current configuration again)."""
    try:
        os.unlink(haproxy_path + _keepalived.REFUSED_SUFFIX)
    except FileNotFoundError:
        return False
    return True


def refused(haproxy_path):
    return os.path.lexists(haproxy_path + _keepalived.REFUSED_SUFFIX)


class KeepalivedStep(object):
    """keepalived.conf and the health check of one load balancer; run() returns (changed, message, diffs)."""

    def __init__(self, module, options, model, haproxy_path, runtime_socket, name, check):
        self.module, self.options, self.check = module, options, check
        self.path = options['path']
        self.temporary = []
        try:
            self.vrrp = _keepalived.settings(dict(options, config_path=haproxy_path, runtime_socket=runtime_socket,
                                                  name=name))
            self.addresses = _keepalived.floating_addresses(options.get('vips'), model,
                                                            options.get('service_addresses', True))
            self.text = _keepalived.render(self.vrrp, self.addresses).encode('utf-8')
            self.script = _keepalived.check_script(sys.executable).encode('utf-8')
        except _keepalived.VrrpError as exc:
            raise KeepalivedFailed('the keepalived settings were refused, so nothing was changed: %s' % exc)

    def run(self):
        try:
            return self._run()
        finally:
            for path in self.temporary:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.lexists(path):
                    os.unlink(path)

    def _run(self):
        directory = os.path.dirname(self.path) or '.'
        if not os.path.isdir(directory):
            raise KeepalivedFailed('the directory %s of %s does not exist: install keepalived (its package makes it) '
                                   'or set haproxy_sync_keepalived_config_path; nothing was changed' % (directory, self.path))
        current, current_script = _read(self.path), _read(self.vrrp['check_script'])
        held = ', '.join(str(a) for a in self.addresses)
        diffs = []
        if current != self.text:
            diffs.append(dict(before_header=self.path, after_header=self.path,
                              before=(current or b'').decode('utf-8', 'replace'), after=self.text.decode('utf-8')))
        if current_script != self.script:
            diffs.append(dict(before_header=self.vrrp['check_script'], after_header=self.vrrp['check_script'],
                              before=(current_script or b'').decode('utf-8', 'replace'),
                              after=self.script.decode('utf-8')))
        if not diffs:
            return False, '%s is up to date (floating addresses %s).' % (self.path, held), []
        # the new file with the new check, validated in a temporary directory first: a refused one changes nothing
        self.validated()
        if self.check:
            return True, 'the new %s passes \'%s\'; keepalived would be reloaded (floating addresses %s).' % (
                self.path, self.shown_validate(), held), diffs
        if current_script != self.script:
            self.install_script()
        if current == self.text:
            return True, 'installed the keepalived health check %s.' % self.vrrp['check_script'], diffs
        mode = os.stat(self.path).st_mode & 0o7777 if current is not None else 0o644
        replace_atomically(self.path, lambda out: out.write(self.text), mode, prefix='.portico-candidate.')
        problem = self.reload()
        if problem is None:
            return True, 'installed the new %s and reloaded keepalived (floating addresses %s).' % (self.path, held), diffs
        raise KeepalivedFailed(self.restore(current, mode, problem))

    def install_script(self):
        directory = os.path.dirname(self.vrrp['check_script'])
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        # keepalived runs it as root, and only when no one else can write it (enable_script_security)
        replace_atomically(self.vrrp['check_script'], lambda out: out.write(self.script), 0o755,
                           (0, 0) if os.geteuid() == 0 else None)

    def validated(self):
        """Validate the new file, pointing at the new health check, both in a temporary directory."""
        directory = tempfile.mkdtemp(prefix='portico-check.')
        self.temporary.append(directory)
        script = os.path.join(directory, 'check')
        with open(script, 'wb') as out:
            out.write(self.script)
        os.chmod(script, 0o755)
        text = _keepalived.render(dict(self.vrrp, check_script=script), self.addresses)
        candidate = os.path.join(directory, 'keepalived.conf')
        with open(candidate, 'w') as out:
            out.write(text)
        rc, output = self.validate(candidate)
        if rc != 0:
            raise KeepalivedFailed('the new %s %s \'%s\' (exit %d), so %s: %s' % (
                self.path, 'would be refused by' if self.check else 'failed to validate with', self.shown_validate(), rc,
                'a real run would leave the current one in place' if self.check else
                'the current one stays and keepalived was not reloaded', output))

    def words(self, command, what):
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise KeepalivedFailed('%s cannot be split into words (%s); %s was not changed' % (what, exc, self.path))
        if not words:
            raise KeepalivedFailed('%s is empty; %s was not changed' % (what, self.path))
        return words

    def shown_validate(self):
        return self.options['validate'].replace('%s', '<candidate>')

    def validate(self, candidate):
        words = self.words(self.options['validate'], 'haproxy_sync_keepalived_validate_command')
        program = self.module.get_bin_path(words[0]) if os.sep not in words[0] else words[0]
        if not program:
            raise KeepalivedFailed('the keepalived validate command\'s program %r was not found on this host; install '
                                   'keepalived or set haproxy_sync_keepalived_validate_command; %s was not changed'
                                   % (words[0], self.path))
        rc, out, err = run_command(self.module, [program] + [w.replace('%s', candidate) for w in words[1:]])
        return rc, (err or out).strip() or 'no output'

    def reload(self):
        """None once the reload command succeeded, else why not."""
        argv = self.words(self.options['reload_command'], 'haproxy_sync_keepalived_reload_command')
        try:
            rc, out, err = run_command(self.module, argv, timeout=self.options.get('reload_timeout') or 30)
        except CommandTimeout as exc:
            return 'the keepalived reload command hung: %s' % exc
        if rc != 0:
            return 'the keepalived reload command exited %d: %s' % (rc, (err or out).strip() or 'no output')
        return None

    def restore(self, current, mode, problem):
        if current is None:
            return ('Reloading keepalived failed (%s). There was no previous %s to put back, so the new one stays; is '
                    'keepalived running? The rollout stops here.' % (problem, self.path))
        replace_atomically(self.path, lambda out: out.write(current), mode)
        again = self.reload()
        then = ('The previous %s was put back and keepalived reloaded with it.' % self.path if again is None else
                'The previous %s was put back, but reloading keepalived failed again (%s); check keepalived on this '
                'host now.' % (self.path, again))
        return 'Reloading keepalived failed (%s). %s The rollout stops here.' % (problem, then)
