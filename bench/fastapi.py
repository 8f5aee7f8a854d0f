"""The test API server with a fast path for large lists, run in its own process.

FastKubeAPI is tests.fakeapi.server.FakeKubeAPI (same TLS, bearer tokens, routing,
paging and continue tokens) with two shortcuts for benchmark-sized clusters:

- load_fast() puts objects in the store without the two deep copies load_list() makes;
- list answers are serialised once and then served from a cache keyed by the request
  (resource, namespace, query), so a repetition measures the client, not the fake.

`python bench/fastapi.py SIZE [--ready N]` generates the cluster, serves it on 127.0.0.1,
warms the cache for the page sizes the benchmark asks for, prints one JSON line
(url, token, ca, counts) and serves until stdin closes or SIGTERM.
"""

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import cluster  # noqa: E402
from tests.fakeapi import objects  # noqa: E402
from tests.fakeapi.server import BY_NAME, FakeKubeAPI, encode_json, wants_table  # noqa: E402


KIND_RESOURCES = {'Node': 'nodes', 'Service': 'services', 'EndpointSlice': 'endpointslices'}
# the lists the benchmark reads, and where
LIST_PATHS = {'nodes': '/api/v1/nodes', 'services': '/api/v1/services',
              'endpointslices': '/apis/discovery.k8s.io/v1/endpointslices'}


def _query_key(query):
    return tuple(sorted((k, tuple(v)) for k, v in query.items()))


class FastKubeAPI(FakeKubeAPI):
    """FakeKubeAPI with pre-serialised list answers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cache = {}
        self._cache_lock = threading.Lock()
        self.hits = self.misses = 0

    def load_fast(self, items):
        """Store items (each with kind and a resourceVersion) as they are: no copies."""
        store = self.store
        with store.lock:
            store.reset()
            for item in items:
                res = BY_NAME[KIND_RESOURCES[item['kind']]]
                obj = {k: v for k, v in item.items() if k not in ('kind', 'apiVersion')}
                meta = obj['metadata']
                rv = int(meta['resourceVersion'])
                store.rv = max(store.rv, rv)
                key = store.key(res, meta.get('namespace', ''), meta['name'])
                store._versions[res.name].setdefault(key, []).append((rv, objects.ordered(obj)))
            self._create_system_namespaces()
            self._ensure_namespaces({i['metadata']['namespace'] for i in items if i['kind'] != 'Node'})
            store.compact(store.rv)
        with self._cache_lock:
            self._cache.clear()

    def _http_list(self, res, info, request):
        if wants_table(request.accept):
            return super()._http_list(res, info, request)
        key = (res.name, info.namespace, _query_key(request.query))
        with self._cache_lock:
            data = self._cache.get(key)
        if data is None:
            code, body, headers = super()._http_list(res, info, request)
            data = encode_json(body)
            with self._cache_lock:
                self._cache[key] = data
                self.misses += 1
        else:
            self.hits += 1
        return 200, data, {'Content-Type': 'application/json'}

    def warm(self, resource, limit):
        """Serialise every page a client paging with this limit (0: one page) will ask for."""
        path = LIST_PATHS[resource]
        query = {'limit': [str(limit)]} if limit else {}
        pages = 0
        while True:
            request = _Request(path, dict(query))
            code, data, headers = self._http_list(BY_NAME[resource], _Info(), request)
            pages += 1
            token = json.loads(data).get('metadata', {}).get('continue') if limit else None
            if not token:
                return pages
            # The kubernetes client sends continue before limit; the key is order-free.
            query = {'continue': [token], 'limit': [str(limit)]}


class _Info:
    namespace = ''


class _Request:
    accept = 'application/json'

    def __init__(self, path, query):
        self.path, self.query = path, query


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('size', choices=sorted(cluster.SIZES))
    parser.add_argument('--ready', type=int, default=None, help='only this many nodes are Ready')
    parser.add_argument('--certdir', required=True)
    parser.add_argument('--warm', default='0,500,100000', help='page sizes to pre-serialise')
    args = parser.parse_args(argv)
    started = time.perf_counter()
    nodes, services, slices = cluster.generate_size(args.size, ready_nodes=args.ready)
    info = cluster.describe(nodes, services, slices)
    api = FastKubeAPI(args.certdir)
    api.load_fast(nodes + services + slices)
    resources = ['nodes', 'services'] + (['endpointslices'] if slices else [])
    del nodes, services, slices
    api.start()
    sizes = {}
    for limit in [int(x) for x in args.warm.split(',') if x]:
        for resource in resources:
            api.warm(resource, limit)
    for resource in resources:
        sizes[resource + '_list_bytes'] = len(api._cache[(resource, '', ())])
    info['lists'] = resources
    info.update(sizes, url=api.url, token=api.token, ca=str(api.ca_path),
                setup_seconds=round(time.perf_counter() - started, 1))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *unused: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(json.dumps(info), flush=True)
    stop.wait()
    api.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
