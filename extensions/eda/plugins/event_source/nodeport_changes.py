# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""portico.k8s.nodeport_changes: an event when the cluster's routing to NodePorts changes."""

DOCUMENTATION = r"""
---
short_description: Emit an event when a change in the cluster changes what HAProxy must route.
description:
  - Lists, then watches Nodes, Services and EndpointSlices, resuming from the last
    resourceVersion, with bookmarks; relists on 410 Gone, reconnects with backoff on any
    error and never stops on a failure of the API server.
  - "Emits an event only when the routing-relevant part of an object changes (the fields the
    routing model of C(portico.k8s.nodeport_info) reads): a node heartbeat, an image list or a
    new resourceVersion alone emits nothing. EndpointSlices count only for services with
    externalTrafficPolicy Local, and only when the set of nodes with a ready endpoint changes."
  - A burst of changes gives one event, C(quiet_period) seconds after the last change and
    never later than C(max_delay) seconds after the first.
  - 'Event payload C({"portico": {"reason": "change"|"startup"|"periodic", "changes": N, "kinds": [...]}}).'
  - Needs the C(kubernetes) Python client, and C(list) and C(watch) on nodes, services and
    endpointslices.discovery.k8s.io.
options:
  kubeconfig:
    description: Path to a kubeconfig (env K8S_AUTH_KUBECONFIG), or its content as a dict.
    type: raw
  context: {description: kubeconfig context (env K8S_AUTH_CONTEXT)., type: str}
  host: {description: API server URL (env K8S_AUTH_HOST)., type: str}
  api_key: {description: Bearer token (env K8S_AUTH_API_KEY)., type: str}
  validate_certs:
    description: Verify the API server's certificate (env K8S_AUTH_VERIFY_SSL or K8S_AUTH_VALIDATE_CERTS).
    type: bool
  ca_cert: {description: CA bundle for the API server (env K8S_AUTH_SSL_CA_CERT)., type: str}
  client_cert: {description: Client certificate (env K8S_AUTH_CERT_FILE)., type: str}
  client_key: {description: Client key (env K8S_AUTH_KEY_FILE)., type: str}
  proxy: {description: HTTP proxy URL (env K8S_AUTH_PROXY)., type: str}
  no_proxy:
    description: Hosts (comma-separated) reached without the proxy (env K8S_AUTH_NO_PROXY).
    type: str
  proxy_headers:
    description: Headers for the proxy, as in kubernetes.core (C(basic_auth), C(proxy_basic_auth), C(user_agent)).
    type: dict
  impersonate_user: {description: Act as this user (env K8S_AUTH_IMPERSONATE_USER)., type: str}
  impersonate_groups:
    description: Groups to act in with impersonate_user (env K8S_AUTH_IMPERSONATE_GROUPS, comma-separated).
    type: list
  namespaces:
    description: Only services in these namespaces (a list or a comma-separated string).
    type: list
    default: []
  label_selector: {description: Only services matching this label selector., type: str}
  filter: {description: Only services for which this JMESPath expression is true (needs jmespath)., type: str}
  quiet_period: {description: Seconds without a change before the event is sent., type: float, default: 1.0}
  max_delay: {description: At most this many seconds between the first change of a burst and its event., type: float, default: 5.0}
  resync_interval:
    description: Seconds between periodic events (a full sync as a safety net); 0 disables. The timer restarts after every event.
    type: float
    default: 300
  sync_on_start: {description: Send a C(startup) event once the first lists are read., type: bool, default: true}
  watch_timeout: {description: Seconds a watch request lasts before it is renewed (timeoutSeconds)., type: int, default: 300}
  api_timeout: {description: Seconds to wait for a list page., type: int, default: 30}
  page_size: {description: Items per list page., type: int, default: 500}
  reconnect_max_delay: {description: Longest wait between two reconnection attempts (exponential backoff with jitter)., type: float, default: 30}
"""

EXAMPLES = r"""
- name: Sync HAProxy when routing changes
  hosts: all
  sources:
    - portico.k8s.nodeport_changes:
        label_selector: exposure=edge
        quiet_period: 1
        max_delay: 5
  rules:
    - name: sync
      condition: event.portico is defined
      action:
        run_playbook:
          name: portico.k8s.sync
"""

import asyncio
import json
import logging
import os
import random
import sys
import threading
import time
import types


def _collection_root():
    # extensions/eda/plugins/event_source/<this file>
    here = os.path.abspath(globals().get('__file__') or sys.argv[0])
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here)))))


def _import_module_utils():
    """The collection's module_utils, whether installed, in a checkout, or run from a path.

    ansible-rulebook loads this file by path, so ansible_collections may not be importable.
    """
    try:
        from ansible_collections.portico.k8s.plugins.module_utils import _client, _cluster, _fields, _fingerprint
        return _client, _cluster, _fields, _fingerprint
    except ImportError:
        pass
    root = _collection_root()
    parent = os.path.dirname(os.path.dirname(root))
    if os.path.basename(parent) == 'ansible_collections':
        sys.path.insert(0, os.path.dirname(parent))
    else:
        # A checkout that is not inside an ansible_collections tree: name it as one.
        for name, path in (('ansible_collections', None), ('ansible_collections.portico', None),
                           ('ansible_collections.portico.k8s', root)):
            if name not in sys.modules:
                module = types.ModuleType(name)
                module.__path__ = [path] if path else []
                sys.modules[name] = module
        if root not in sys.modules['ansible_collections.portico.k8s'].__path__:
            sys.modules['ansible_collections.portico.k8s'].__path__.append(root)
    from ansible_collections.portico.k8s.plugins.module_utils import _client, _cluster, _fields, _fingerprint
    return _client, _cluster, _fields, _fingerprint


_client, _cluster, _fields, _fingerprint = _import_module_utils()

try:
    import kubernetes
    HAS_KUBERNETES = True
except ImportError:
    HAS_KUBERNETES = False

logger = logging.getLogger('portico.k8s.nodeport_changes')

# kind -> resource of _client.RESOURCES
WATCHED = ((_fingerprint.NODE, 'nodes'), (_fingerprint.SERVICE, 'services'),
           (_fingerprint.ENDPOINT_SLICE, 'endpointslices'))
MIN_RECONNECT_DELAY = 0.2
DEFAULTS = {'quiet_period': 1.0, 'max_delay': 5.0, 'resync_interval': 300.0, 'sync_on_start': True,
            'watch_timeout': 300, 'api_timeout': 30, 'page_size': 500, 'reconnect_max_delay': 30.0}
ALIASES = {'verify_ssl': 'validate_certs', 'ssl_ca_cert': 'ca_cert', 'cert_file': 'client_cert',
           'key_file': 'client_key'}


class OptionError(ValueError):
    """A source argument is wrong; the source does not start."""


def _bool(value, name):
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    if text in ('1', 'true', 'yes', 'on', 'y', 't'):
        return True
    if text in ('0', 'false', 'no', 'off', 'n', 'f', ''):
        return False
    raise OptionError('%s: %r is not a boolean' % (name, value))


def _number(value, name, kind, minimum):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise OptionError('%s: %r is not a number' % (name, value))
    if number < minimum:
        raise OptionError('%s must be at least %s, got %s' % (name, minimum, value))
    return number


def parse_args(args, environ=None):
    """(connection settings, options) from the source's arguments and K8S_AUTH_* variables."""
    environ = os.environ if environ is None else environ
    args = dict((ALIASES.get(k, k), v) for k, v in (args or {}).items())
    settings = {}
    for name in _client.CONNECTION_ENV:
        value = args.get(name)
        settings[name] = value if value not in (None, '') else _client.from_environment(name, environ)
    settings['proxy_headers'] = args.get('proxy_headers') or None
    settings['validate_certs'] = _bool(settings['validate_certs'], 'validate_certs')
    for name in ('kubeconfig', 'ca_cert', 'client_cert', 'client_key'):
        # a kubeconfig may also be its content, as a dict
        if settings[name] and not isinstance(settings[name], dict):
            settings[name] = os.path.expanduser(str(settings[name]))
    namespaces = args.get('namespaces') or []
    if isinstance(namespaces, str):
        namespaces = [n.strip() for n in namespaces.split(',') if n.strip()]
    options = dict(DEFAULTS)
    options.update(namespaces=sorted(set(str(n) for n in namespaces)),
                   label_selector=args.get('label_selector') or None, filter=args.get('filter') or None)
    for name in ('quiet_period', 'max_delay', 'resync_interval', 'reconnect_max_delay'):
        if args.get(name) is not None:
            options[name] = _number(args[name], name, float, 0)
    for name in ('watch_timeout', 'api_timeout', 'page_size'):
        if args.get(name) is not None:
            options[name] = _number(args[name], name, int, 1)
    if args.get('sync_on_start') is not None:
        options['sync_on_start'] = _bool(args['sync_on_start'], 'sync_on_start')
    if options['max_delay'] < options['quiet_period']:
        options['max_delay'] = options['quiet_period']
    return settings, options


class _Watcher(threading.Thread):
    """Lists, then watches one resource (in one namespace) forever; posts what it sees.

    Messages: ('list', watcher, items), ('event', watcher, type, object), ('error', watcher, text).
    A blocking thread per watch keeps the event loop free; it is a daemon, and stop() cuts
    its connection so it ends at once.
    """

    def __init__(self, kind, resource, namespace, selector, settings, options, post):
        super().__init__(name='portico-watch-%s%s' % (resource, '-' + namespace if namespace else ''), daemon=True)
        self.kind, self.resource, self.namespace, self.selector = kind, resource, namespace, selector
        self.settings, self.options, self.post = settings, options, post
        self.stopping = threading.Event()
        # only the fields the fingerprints read, unless a JMESPath filter may read any
        self.whole = resource == 'services' and bool(options.get('filter'))
        self.read = _fields.reader('watch:' + resource, self.whole)
        self.resource_version = None
        self.response = None
        self.lists = self.watches = self.expired = self.failures = 0

    def stop(self):
        self.stopping.set()
        response = self.response
        if response is not None:
            try:
                if hasattr(response, 'shutdown'):
                    response.shutdown()
                response.close()
            except Exception:  # pylint: disable=broad-except
                pass

    def run(self):
        delay, client = MIN_RECONNECT_DELAY, None
        while not self.stopping.is_set():
            try:
                if client is None:
                    client = _client.KubeClient(self.settings, timeout=self.options['api_timeout'],
                                                page_size=self.options['page_size'])
                if self.resource_version is None:
                    items, version = client.list(self.resource, _identity, namespace=self.namespace,
                                                 selector=self.selector, whole=self.whole)
                    self.lists += 1
                    if self.stopping.is_set():
                        break
                    self.post(('list', self, items))
                    self.resource_version = version
                    delay = MIN_RECONNECT_DELAY
                began = time.monotonic()
                if self._watch(client) or time.monotonic() - began > 1.0:
                    delay = MIN_RECONNECT_DELAY
                    continue
                raise _WatchError('the watch of %s ended at once without an event' % self.resource)
            except Exception as exc:  # pylint: disable=broad-except
                if self.stopping.is_set():
                    break
                self.failures += 1
                self.post(('error', self, '%s: %s' % (type(exc).__name__, exc)))
                if client is not None:
                    # start again with a fresh connection pool (and re-read credentials)
                    client.close()
                    client = None
                self.stopping.wait(delay * random.uniform(0.5, 1.0))
                delay = min(max(delay * 2, MIN_RECONNECT_DELAY), max(self.options['reconnect_max_delay'],
                                                                     MIN_RECONNECT_DELAY))
        if client is not None:
            client.close()

    def _watch(self, client):
        """One watch request from self.resource_version; True if it delivered anything."""
        api_class, cluster_method, namespaced_method, unused_kind, unused_path = _client.RESOURCES[self.resource]
        api = getattr(kubernetes.client, api_class)(client.api_client)
        timeout = self.options['watch_timeout']
        kwargs = dict(watch=True, resource_version=self.resource_version, allow_watch_bookmarks=True,
                      timeout_seconds=timeout, _preload_content=False,
                      _request_timeout=(self.options['api_timeout'], timeout + 30))
        if self.selector:
            kwargs['label_selector'] = self.selector
        try:
            if self.namespace:
                response = getattr(api, namespaced_method)(self.namespace, **kwargs)
            else:
                response = getattr(api, cluster_method)(**kwargs)
        except _client.ApiException as exc:
            if exc.status == 410:
                return self._expired('the watch request')
            raise _client.KubeError('watching %s: %s %s' % (self.resource, exc.status, _client.api_text(exc.reason, 60)))
        self.response, self.watches = response, self.watches + 1
        delivered, buffer = False, b''
        try:
            for chunk in response.stream(amt=None, decode_content=True):
                buffer += chunk
                while b'\n' in buffer:
                    line, buffer = buffer.split(b'\n', 1)
                    if line.strip():
                        delivered = True
                        if not self._line(line):
                            return True
                if self.stopping.is_set():
                    return True
        finally:
            self.response = None
            response.release_conn()
        return delivered

    def _line(self, line):
        """Handle one watch event; False when the watch must end (410: relist)."""
        event = self.read(line)
        event_type, obj = event.get('type'), event.get('object') or {}
        if event_type == 'ERROR':
            if obj.get('code') == 410:
                self._expired('the watch')
                return False
            raise _WatchError('watching %s: %s (%s)' % (self.resource, _client.api_text(obj.get('message')),
                                                        _client.api_text(obj.get('code'), 10)))
        version = (obj.get('metadata') or {}).get('resourceVersion')
        if event_type in ('ADDED', 'MODIFIED', 'DELETED'):
            self.post(('event', self, event_type, obj))
        if version:
            self.resource_version = version
        return True

    def _expired(self, what):
        logger.info('%s of %s expired (410 Gone): listing again', what, self.resource)
        self.expired += 1
        self.resource_version = None
        return True


class _WatchError(Exception):
    pass


def _identity(obj):
    return obj


class NodePortChanges:
    """The source: watchers feed a RoutingState; coalesced routing changes become events."""

    def __init__(self, args, environ=None):
        self.settings, self.options = parse_args(args, environ)
        if not HAS_KUBERNETES:
            raise RuntimeError('portico.k8s.nodeport_changes needs the kubernetes Python client '
                               '(pip install kubernetes)')
        # Fails now, with the operator's message, on a bad kubeconfig or selector.
        _client.make_configuration(self.settings)
        service_filter = _cluster.ServiceFilter(self.options['namespaces'], self.options['label_selector'],
                                                self.options['filter'])
        self.state = _fingerprint.RoutingState(service_filter)
        self.watchers = []
        self.emitted = []
        self._event_loop = self._inbox = None
        self._make_watchers(self._post)

    def _post(self, message):
        """Called from watcher threads: hand a message to the event loop."""
        try:
            self._event_loop.call_soon_threadsafe(self._inbox.put_nowait, message)
        except RuntimeError:  # the loop is closed: the source has ended
            message[1].stopping.set()

    def _make_watchers(self, post):
        namespaces = self.options['namespaces'] or [None]
        for kind, resource in WATCHED:
            scopes = [None] if resource == 'nodes' else namespaces
            selector = self.options['label_selector'] if resource == 'services' else None
            for namespace in scopes:
                self.watchers.append(_Watcher(kind, resource, namespace, selector, self.settings,
                                              self.options, post))

    async def run(self, queue):
        loop = self._event_loop = asyncio.get_running_loop()
        inbox = self._inbox = asyncio.Queue()
        for watcher in self.watchers:
            watcher.start()
        try:
            await self._loop(queue, inbox, loop)
        finally:
            for watcher in self.watchers:
                watcher.stop()

    async def _loop(self, queue, inbox, loop):
        opts = self.options
        synced, started = set(), False
        pending, kinds, first, last = 0, set(), None, None
        resync = opts['resync_interval']
        next_periodic = loop.time() + resync if resync else None
        while True:
            now = loop.time()
            deadlines = [next_periodic] if next_periodic else []
            if pending:
                deadlines.append(min(last + opts['quiet_period'], first + opts['max_delay']))
            timeout = max(min(deadlines) - now, 0) if deadlines else None
            try:
                message = await asyncio.wait_for(inbox.get(), timeout)
            except asyncio.TimeoutError:
                message = None
            now = loop.time()
            changes, kind = self._handle(message, synced) if message else (0, None)
            if changes:
                pending += changes
                kinds.add(kind)
                first = first if first is not None else now
                last = now
            if not started and len(synced) == len(self.watchers):
                started = True
                logger.info('watching %d lists; routing fingerprint %s', len(self.watchers),
                            self.state.fingerprint()[:12])
                if opts['sync_on_start']:
                    await self._emit(queue, 'startup', 0, ())
                    next_periodic = now + resync if resync else None
            if pending and (now >= last + opts['quiet_period'] or now >= first + opts['max_delay']):
                await self._emit(queue, 'change', pending, kinds)
                pending, kinds, first, last = 0, set(), None, None
                next_periodic = now + resync if resync else None
            elif next_periodic and now >= next_periodic and not pending:
                await self._emit(queue, 'periodic', 0, ())
                next_periodic = now + resync

    def _handle(self, message, synced):
        """(routing changes, kind) of one message from a watcher."""
        what, watcher = message[0], message[1]
        if what == 'error':
            logger.warning('%s: %s; retrying', watcher.name, message[2])
            return 0, None
        if what == 'list':
            changes = self.state.replace(watcher.kind, message[2], watcher.namespace)
            if watcher not in synced:
                synced.add(watcher)
                return 0, None  # the first list is the baseline
            if changes:
                logger.info('%s: %d routing changes found by listing again', watcher.name, changes)
            return changes, watcher.kind
        if what == 'event':
            event_type, obj = message[2], message[3]
            changed = self.state.apply(watcher.kind, event_type, obj)
            if changed:
                logger.debug('%s %s %s changes routing', event_type, watcher.kind, _fingerprint.object_key(obj))
            return int(changed), watcher.kind
        return 0, None

    async def _emit(self, queue, reason, changes, kinds):
        event = {'portico': {'reason': reason, 'changes': changes, 'kinds': sorted(kinds)}}
        logger.info('event: %s', json.dumps(event['portico'], sort_keys=True))
        self.emitted.append((time.time(), event))
        await queue.put(event)


async def main(queue, args):
    """ansible-rulebook's entry point: runs until cancelled."""
    source = NodePortChanges(args)
    await source.run(queue)


if __name__ == '__main__':
    # python nodeport_changes.py '{"host": ...}' prints events (K8S_AUTH_* are read too)
    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event), flush=True)

    logging.basicConfig(level=logging.INFO)
    try:
        asyncio.run(main(_PrintQueue(), json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
    except KeyboardInterrupt:
        pass
