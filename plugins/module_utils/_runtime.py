# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy's runtime API on a UNIX stats socket: which worker answers, and what it serves.

Private to this collection; runs on the load balancer. After a reload only the new worker
listens on the stats socket (the old one hands its listeners over and finishes its
connections), so a worker that answers with a new pid and the new file's backends proves that
the new configuration serves; a TCP connect to a frontend could be answered by the old one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import socket
import subprocess
import time

_LIMIT = 64 * 1024 * 1024


class RuntimeAPIError(Exception):
    """The runtime API could not be asked; str() says why."""


def ask(path, command, timeout=2.0):
    """The answer of HAProxy's runtime API at the UNIX socket path to one command (non-interactive)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(path)
        connection.sendall(command.encode('ascii') + b'\n')
        parts, size = [], 0
        while True:
            part = connection.recv(65536)
            if not part:
                break
            parts.append(part)
            size += len(part)
            if size > _LIMIT:
                raise RuntimeAPIError('the answer to %r on %s is larger than %d bytes' % (command, path, _LIMIT))
    except (OSError, socket.timeout) as exc:
        raise RuntimeAPIError('%s: %s' % (path, exc))
    finally:
        connection.close()
    return b''.join(parts).decode('utf-8', 'replace')


class Session(object):
    """One connection to the runtime API in interactive mode: many commands, one answer each.

    Use as a context manager; ``send`` returns the answer to one command (without the prompt).
    """

    _PROMPT = b'\n> '

    def __init__(self, path, timeout=5.0):
        self.path, self.timeout, self.connection = path, timeout, None

    def __enter__(self):
        self.connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.connection.settimeout(self.timeout)
        try:
            self.connection.connect(self.path)
            self.connection.sendall(b'prompt\n')
            self._answer('prompt')
        except (OSError, socket.timeout, RuntimeAPIError) as exc:
            self.connection.close()
            raise RuntimeAPIError(str(exc) if isinstance(exc, RuntimeAPIError) else '%s: %s' % (self.path, exc))
        return self

    def __exit__(self, *exc):
        try:
            self.connection.sendall(b'quit\n')
        except (OSError, socket.timeout):
            pass
        self.connection.close()

    def _answer(self, command):
        parts, size, tail = [], 0, b''
        while True:
            part = self.connection.recv(65536)
            if not part:
                raise RuntimeAPIError('%s closed the connection after %r' % (self.path, command))
            parts.append(part)
            size += len(part)
            if size > _LIMIT:
                raise RuntimeAPIError('the answer to %r on %s is larger than %d bytes' % (command, self.path, _LIMIT))
            # the prompt ends every answer; it may arrive split across reads
            tail = (tail + part)[-len(self._PROMPT):]
            if tail == self._PROMPT:
                break
        return b''.join(parts)[:-len(self._PROMPT)].decode('utf-8', 'replace')

    def send(self, command):
        """The answer to one command (ASCII, one line)."""
        if '\n' in command or ';' in command or not command.isascii():
            raise RuntimeAPIError('refusing to send %r: one plain command per line' % command[:80])
        try:
            self.connection.sendall(command.encode('ascii') + b'\n')
            return self._answer(command)
        except (OSError, socket.timeout) as exc:
            raise RuntimeAPIError('%s: %s (after %r)' % (self.path, exc, command))


def info(path, timeout=2.0):
    """'show info' as a dict (Pid, Version, Uptime_sec ...)."""
    fields = {}
    for line in ask(path, 'show info', timeout).splitlines():
        name, colon, value = line.partition(':')
        if colon:
            fields[name.strip()] = value.strip()
    if 'Pid' not in fields:
        raise RuntimeAPIError('%s did not answer "show info" as HAProxy does' % path)
    return fields


def backends(path, timeout=2.0):
    """The backends of the configuration the answering worker runs ('show backend')."""
    return set(line.strip() for line in ask(path, 'show backend', timeout).splitlines()
               if line.strip() and not line.startswith('#'))


def worker_pid(path, tries=3, poll=0.1):
    """The pid of the worker answering on path, or None if none answers (after a few tries: a
    busy worker must not pass for none, or the old one could pass for a new one)."""
    for attempt in range(tries):
        try:
            return info(path)['Pid']
        except RuntimeAPIError:
            if attempt + 1 < tries:
                time.sleep(poll)
    return None


def wait_for_new_worker(path, old_pid, wanted, timeout, poll=0.05):
    """Wait until a worker other than old_pid answers on path and runs every backend of wanted.

    Returns (pid, None) once it does, else (None, why not) after timeout seconds.
    """
    deadline, why = time.time() + timeout, 'nothing answered'
    wanted = set(wanted)
    while True:
        try:
            pid = info(path)['Pid']
            if pid == old_pid:
                why = 'the old worker (pid %s) still answers' % pid
            else:
                missing = wanted - backends(path)
                if not missing:
                    return pid, None
                why = 'worker %s does not run %d of the new backends (%s)' % (
                    pid, len(missing), ', '.join(sorted(missing)[:5]))
        except RuntimeAPIError as exc:
            why = str(exc)
        if time.time() >= deadline:
            return None, 'no new HAProxy worker served the new configuration on %s within %d seconds (%s)' % (
                path, timeout, why)
        time.sleep(poll)


def wait_for_port(host, port, timeout, poll=0.1):
    """None once host:port accepts a TCP connection, else why not (after timeout seconds)."""
    deadline, last = time.time() + timeout, None
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return None
        except OSError as exc:
            last = exc
        if time.time() >= deadline:
            return 'port %d on %s did not accept connections within %d seconds (%s)' % (port, host, timeout, last)
        time.sleep(poll)


class CommandTimeout(Exception):
    """A command did not finish in time and was killed; str() says so."""


def run_command(module, argv, timeout=None):
    """(rc, stdout, stderr) of argv run by the module (no shell); a command that cannot start is a failure like any other.

    With a timeout (seconds), the command runs in a process group of its own, which is killed
    (SIGKILL) when it has not finished by then; CommandTimeout says so.
    """
    if timeout is None:
        try:
            return module.run_command(argv, handle_exceptions=False)
        except (OSError, IOError) as exc:
            return 127, '', 'cannot run %s: %s' % (argv[0] if argv else '(empty command)', exc)
    try:
        # run_command cannot put the command in a process group of its own, nor kill that group
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                   stderr=subprocess.PIPE, start_new_session=True)
    except (OSError, IOError, ValueError) as exc:
        return 127, '', 'cannot run %s: %s' % (argv[0] if argv else '(empty command)', exc)
    try:
        out, err = process.communicate(timeout=max(timeout, 0))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            # a descendant that left the group may still hold the pipes: do not wait for it
            process.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        process.wait()
        raise CommandTimeout('%s did not finish within %d seconds and was killed' % (argv[0], timeout))
    return process.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
