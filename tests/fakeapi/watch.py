"""Watch support for the fake kube-apiserver: `?watch=1` on list paths.

A watch answers 200 and then streams newline-delimited JSON events with chunked transfer
encoding, as kube-apiserver does:

    {"type": "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR", "object": {...}}

- from `resourceVersion` R: every change with a revision above R, in revision order (read
  from the store's MVCC history); without R (or with "0"), an ADDED event for each current
  object first;
- `labelSelector`/`fieldSelector`: an object that stops matching is sent as DELETED, one that
  starts matching as ADDED, as the watch cache does;
- `allowWatchBookmarks=true`: a BOOKMARK (kind, apiVersion and metadata.resourceVersion only)
  every `bookmark_interval` seconds;
- a revision older than the compacted one: one ERROR event with a 410 `Expired` Status, then
  the stream ends (also when history is compacted beneath an open watch);
- `timeoutSeconds`: the stream ends cleanly after that long.

Tests drop open watches with `FakeKubeAPI.drop_watches()` (the connections are cut without the
final chunk), and restart the server with `stop()`/`start()` (same port, same objects).
Watches are served only when the server was made with `watch=True` (otherwise 405).
"""

import copy
import json
import socket
import threading
import time

# kube-apiserver picks a random timeout in [min-request-timeout, 2x] when none is asked for.
DEFAULT_TIMEOUT = 1800
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")


def _truthy(values):
    return bool(values) and values[-1] in ("1", "t", "T", "true", "TRUE", "True")


def _last(query, name):
    values = query.get(name)
    return values[-1] if values else None


def expired_event(wanted, compacted):
    """The ERROR event kube-apiserver sends for a resourceVersion older than the compaction."""
    return {"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: {wanted} ({compacted})", "reason": "Expired", "code": 410}}


def bookmark_event(res, rv):
    obj = {"kind": res.kind, "apiVersion": res.api_version, "metadata": {"resourceVersion": str(rv)}}
    return {"type": "BOOKMARK", "object": obj}


class WatchHub:
    """The open watches of one FakeKubeAPI, so that a test can drop them all."""

    def __init__(self, bookmark_interval=1.0):
        self.bookmark_interval = bookmark_interval
        self._lock = threading.Lock()
        self._streams = set()
        self.opened = 0

    def add(self, stream):
        with self._lock:
            self._streams.add(stream)
            self.opened += 1

    def discard(self, stream):
        with self._lock:
            self._streams.discard(stream)

    @property
    def open(self):
        with self._lock:
            return len(self._streams)

    def drop(self):
        """Cut every open watch's connection, as a proxy or a dying server would."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.drop()
        return len(streams)


class WatchStream:
    """One watch request; built (and validated) while dispatching, served by the handler."""

    def __init__(self, api, res, info, request, label_predicate, field_predicate):
        self.api, self.res, self.request = api, res, request
        query = request.query
        self.prefix = f"{info.namespace}/" if res.namespaced and info.namespace else ""
        self.labels, self.fields = label_predicate, field_predicate
        self.bookmarks = _truthy(query.get("allowWatchBookmarks"))
        wanted = _last(query, "resourceVersion")
        if wanted and not wanted.isdigit():
            from .server import bad_request
            raise bad_request(f'resourceVersion: Invalid value: "{wanted}": must be a positive integer')
        self.start_rv = int(wanted) if wanted and wanted != "0" else None
        timeout = _last(query, "timeoutSeconds")
        if timeout and not timeout.isdigit():
            from .server import bad_request
            raise bad_request(f'timeoutSeconds: Invalid value: "{timeout}": must be a non-negative integer')
        self.timeout = int(timeout) if timeout else DEFAULT_TIMEOUT
        self._dropped = threading.Event()
        self._socket = None

    # ------------------------------------------------------------ selection

    def _matches(self, obj):
        return obj is not None and self.labels(obj["metadata"].get("labels", {})) and self.fields(obj)

    def _typed(self, obj, rv=None):
        out = copy.deepcopy(obj)
        if rv is not None:
            out["metadata"]["resourceVersion"] = str(rv)
        return {"kind": self.res.kind, "apiVersion": self.res.api_version, **out}

    def _initial(self, rv):
        return [{"type": "ADDED", "object": self._typed(obj)}
                for key, obj in self.api.store.visible(self.res, rv)
                if key.startswith(self.prefix) and self._matches(obj)]

    def _changes(self, after, upto):
        """The events of revisions in (after, upto], in revision order (caller holds the store lock)."""
        found = []
        for key, history in self.api.store._versions[self.res.name].items():
            if not key.startswith(self.prefix):
                continue
            previous = None
            for rv, obj in history:
                if after < rv <= upto:
                    event = self._event(previous, obj, rv)
                    if event:
                        found.append((rv, event))
                previous = obj
        found.sort(key=lambda item: item[0])
        return [event for unused, event in found]

    def _event(self, previous, current, rv):
        was, now = self._matches(previous), self._matches(current)
        if now:
            return {"type": "MODIFIED" if was else "ADDED", "object": self._typed(current)}
        if was:
            return {"type": "DELETED", "object": self._typed(previous, rv)}
        return None

    # ------------------------------------------------------------ serving

    def drop(self):
        self._dropped.set()
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(self, handler):
        """Stream events to handler's connection until timeout, drop, 410 or server stop."""
        hub, server = self.api.watches, handler.server
        self._socket = handler.connection
        hub.add(self)
        try:
            self._headers(handler)
            self._stream(handler, server)
        except OSError:
            self._dropped.set()
        finally:
            hub.discard(self)
            if self._dropped.is_set() or self.api._httpd is not server:
                handler.close_connection = True

    def _headers(self, handler):
        import uuid
        handler.send_response(200)
        handler.send_header("Audit-Id", str(uuid.uuid4()))
        handler.send_header("Cache-Control", "no-cache, private")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.flush()

    def _write(self, handler, events):
        if not events:
            return
        data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        handler.wfile.flush()

    def _stream(self, handler, server):
        store = self.api.store
        deadline = time.monotonic() + self.timeout
        with store.lock:
            if self.start_rv is not None and self.start_rv < store.compacted:
                events, position = [expired_event(self.start_rv, store.compacted)], None
            elif self.start_rv is None:
                position = store.rv
                events = self._initial(position)
            else:
                position = store.rv
                events = self._changes(self.start_rv, position)
        self._write(handler, events)
        if position is None:
            return self._end(handler)
        last_bookmark = time.monotonic()
        while True:
            if self._dropped.is_set() or self.api._httpd is not server:
                self._dropped.set()
                return None
            now = time.monotonic()
            if now >= deadline:
                return self._end(handler)
            with store.lock:
                if position < store.compacted:
                    events, position = [expired_event(position, store.compacted)], None
                elif store.rv > position:
                    events = self._changes(position, store.rv)
                    position = store.rv
                else:
                    events = []
                    store.changed.wait(min(0.1, max(deadline - now, 0)))
            self._write(handler, events)
            if position is None:
                return self._end(handler)
            interval = self.api.watches.bookmark_interval
            if self.bookmarks and interval and time.monotonic() - last_bookmark >= interval:
                self._write(handler, [bookmark_event(self.res, position)])
                last_bookmark = time.monotonic()

    def _end(self, handler):
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
