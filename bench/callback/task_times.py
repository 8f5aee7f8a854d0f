"""Records how long each task takes, per host, as JSON lines in $PORTICO_BENCH_TASK_TIMES.

Besides ``seconds`` (monotonic), every record carries wall-clock times (``start``, ``end``,
``wall``: seconds since the epoch) and the pid of the ansible-playbook process, so that the
runs of a long-lived caller (ansible-rulebook runs the playbook once per event) can be told
apart and lined up with times measured in other processes.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: task_times
type: aggregate
short_description: per-task wall times for the benchmark
description: Appends one JSON line per playbook start and end, play start, and finished task and host to $PORTICO_BENCH_TASK_TIMES.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get('PORTICO_BENCH_TASK_TIMES')
        self._started = {}
        self._play_started = None

    def _write(self, record):
        if self._path:
            record['pid'] = os.getpid()
            with open(self._path, 'a') as handle:
                handle.write(json.dumps(record) + '\n')

    def v2_playbook_on_start(self, playbook):
        self._write({'playbook': os.path.basename(playbook._file_name), 'wall': time.time()})

    def v2_playbook_on_play_start(self, play):
        now = time.monotonic()
        self._write({'play': play.get_name(), 'at': now, 'wall': time.time()})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = (time.monotonic(), time.time())

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _done(self, result, status):
        task = result._task
        start = self._started.get(task._uuid)
        if start is not None:
            self._write({'task': task.get_name(), 'host': result._host.get_name(), 'status': status,
                         'seconds': time.monotonic() - start[0], 'start': start[1], 'end': time.time()})

    def v2_runner_on_ok(self, result):
        self._done(result, 'ok')

    def v2_runner_on_skipped(self, result):
        self._done(result, 'skipped')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, 'failed')

    def v2_playbook_on_stats(self, stats):
        self._write({'stats': True, 'wall': time.time()})
