"""Fixtures of the Event-Driven Ansible tests: the source plugin loaded as ansible-rulebook loads it."""

import asyncio
import contextlib
import importlib.util
import logging
import time
from pathlib import Path

import pytest

from tests.fakeapi.server import FakeKubeAPI

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / 'extensions' / 'eda' / 'plugins' / 'event_source' / 'nodeport_changes.py'


@pytest.fixture(scope='session')
def source_module():
    """extensions/eda/plugins/event_source/nodeport_changes.py, loaded by path."""
    spec = importlib.util.spec_from_file_location('portico_nodeport_changes', SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def watchapi(fakeapi_certdir):
    """A running FakeKubeAPI that serves watches, with quick bookmarks."""
    with FakeKubeAPI(fakeapi_certdir, watch=True, bookmark_interval=0.5) as api:
        yield api


def source_args(api, **extra):
    args = {'host': api.url, 'api_key': api.token, 'ca_cert': str(api.ca_path), 'quiet_period': 0.3,
            'max_delay': 2, 'resync_interval': 0, 'sync_on_start': False, 'watch_timeout': 20}
    args.update(extra)
    return args


class Running:
    """main(queue, args) running as a task of an event loop in the test's thread."""

    def __init__(self, module, args):
        self.module, self.args = module, args
        self.loop = asyncio.new_event_loop()
        self.queue = asyncio.Queue()
        self.source = module.NodePortChanges(args, environ={})
        self.task = self.loop.create_task(self.source.run(self.queue))

    def run_for(self, seconds):
        self.loop.run_until_complete(asyncio.sleep(seconds))
        if self.task.done():
            self.task.result()

    def run_until(self, condition, timeout=10.0, step=0.05):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.run_for(step)
        return True

    def synced(self):
        return all(w.lists for w in self.source.watchers) and all(w.watches for w in self.source.watchers)

    def events(self):
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait()['portico'])
        return out

    def close(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        for watcher in self.source.watchers:
            watcher.join(timeout=5)
        self.loop.close()


@pytest.fixture
def run_source(source_module, caplog):
    """run_source(api, **args) starts the source and waits until its watches are open."""
    caplog.set_level(logging.INFO, logger='portico.k8s.nodeport_changes')
    started = []

    def start(api, wait=True, **extra):
        running = Running(source_module, source_args(api, **extra))
        started.append(running)
        if wait:
            assert running.run_until(running.synced), 'the source did not list and watch in time'
        return running

    yield start
    for running in started:
        running.close()
