#!/usr/bin/env python3
"""Stand-ins for the demo cluster's nodes: answer HTTP on each node address and nodePort.

Reads the same snapshot as the demo sync, so every Ready node's InternalIP (loopback
addresses 127.0.1.x) answers on every TCP nodePort with the node's name. Runs until
killed; serves loopback only.
"""

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def endpoints(snapshot):
    items = json.load(open(snapshot))['items']
    node_ports = sorted({p['nodePort'] for s in items if s['kind'] == 'Service'
                         for p in s['spec'].get('ports', []) if p.get('nodePort') and p['protocol'] == 'TCP'})
    for node in items:
        if node['kind'] != 'Node':
            continue
        ready = any(c['type'] == 'Ready' and c['status'] == 'True' for c in node['status']['conditions'])
        addresses = [a['address'] for a in node['status']['addresses'] if a['type'] == 'InternalIP']
        address = addresses[0] if addresses else ''
        if ready and address.startswith('127.'):
            for port in node_ports:
                yield node['metadata']['name'], address, port


def handler_for(node, port):
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            body = ('hello from %s via nodePort %d\n' % (node, port)).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return Answer


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('snapshot')
    parser.add_argument('--pidfile')
    args = parser.parse_args()
    # Blocked before the threads start, so sigwait below receives them in the main thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    servers = []
    for node, address, port in endpoints(args.snapshot):
        server = ThreadingHTTPServer((address, port), handler_for(node, port))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    if args.pidfile:
        with open(args.pidfile, 'w') as handle:
            handle.write('%d\n' % os.getpid())
    print('stand-in nodes listening on %d address:port pairs' % len(servers), flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    for server in servers:
        server.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
