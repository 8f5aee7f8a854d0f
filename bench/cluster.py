"""A synthetic cluster with objects shaped like a production cluster's.

Nodes are about 9 KB of JSON each (a full image list, managedFields, the kubelet's
conditions, cloud and node-pool labels, several addresses). Services are mostly
ClusterIP, with NodePort and LoadBalancer services that have several ports, Helm-style
labels and annotations, last-applied-configuration on some, and a mix of external and
internal traffic policies. Everything is derived from a seed, so a size always gives the
same cluster.

nodePorts come from the real range (30000-32767), so at the largest size exposure is
capped at what a real cluster could allocate: services drawn as NodePort/LoadBalancer
once the range is used up become ClusterIP.

The heavier scenario ("heavy", 5000 x 10000) is a cluster that exposes most of what it runs:
every node Ready, about 80% of the services NodePort or LoadBalancer (a cluster started with a
wider --service-node-port-range, 20000-59999, to have the nodePorts), a quarter of those with
externalTrafficPolicy Local, and an EndpointSlice for every service, as the endpointslice
controller keeps them (so Portico reads all of them).
"""

import datetime
import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakeapi import objects  # noqa: E402

SIZES = {'small': (50, 200), 'medium': (500, 2000), 'large': (5000, 10000), 'heavy': (5000, 10000)}
HEAVY = frozenset(['heavy'])
# the heavier scenario's --service-node-port-range
HEAVY_NODE_PORTS = (20000, 59999)

# Ports services commonly declare: a cluster has many services on these, so frontends conflict.
COMMON_PORTS = [80, 443, 8080, 8443, 3000, 5432, 6379, 9090, 9000, 5000, 8000, 27017, 3306, 9200,
                5672, 15672, 11211, 2181, 9092, 4222]
EXTRA_PORTS = [('metrics', 9102), ('grpc', 50051), ('admin', 8081), ('health', 8086), ('https', 443)]
ZONES = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c']
INSTANCE_TYPES = ['m6i.xlarge', 'm6i.2xlarge', 'c6i.4xlarge', 'r6i.2xlarge']
BASE_TIME = datetime.datetime(2025, 1, 6, 8, 0, 0, tzinfo=datetime.timezone.utc)
IMAGE_REPOS = [
    'docker.io/library/nginx', 'quay.io/prometheus/node-exporter', 'registry.k8s.io/kube-proxy',
    'registry.k8s.io/pause', 'docker.io/calico/node', 'docker.io/calico/cni',
    'registry.k8s.io/coredns/coredns', 'quay.io/jetstack/cert-manager-controller',
    'docker.io/grafana/promtail', 'ghcr.io/fluxcd/source-controller', 'docker.io/bitnami/redis',
    'docker.io/library/postgres', 'quay.io/cilium/cilium', 'registry.k8s.io/ingress-nginx/controller',
    'docker.io/istio/proxyv2', 'gcr.io/datadoghq/agent', 'docker.io/library/busybox',
    'registry.k8s.io/metrics-server/metrics-server', 'docker.io/envoyproxy/envoy',
    'quay.io/argoproj/argocd', 'docker.io/otel/opentelemetry-collector-contrib',
    'registry.k8s.io/sig-storage/csi-node-driver-registrar', 'docker.io/amazon/aws-ebs-csi-driver',
    'docker.io/library/python', 'docker.io/library/node', 'docker.io/library/golang',
]


def _stamp(seconds):
    return (BASE_TIME + datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%SZ')


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _images(rng, count):
    images = []
    for repo in rng.sample(IMAGE_REPOS, count):
        tag = 'v%d.%d.%d' % (rng.randint(0, 3), rng.randint(0, 30), rng.randint(0, 12))
        images.append({'names': ['%s@sha256:%s' % (repo, _digest(repo + tag)), '%s:%s' % (repo, tag)],
                       'sizeBytes': rng.randint(300000, 900000000)})
    return images


def make_node(index, rng, ready=True, address=None):
    """One Node of about 9 KB as JSON."""
    name = 'node-%05d.eu-west-1.compute.internal' % index
    zone = ZONES[index % len(ZONES)]
    pool = 'pool-%d' % (index % 7)
    internal = address or '10.%d.%d.%d' % (16 + index // 65025, index // 255 % 255, index % 255 + 1)
    external = ('52.%d.%d.%d' % (index // 65025, index // 255 % 255, index % 255 + 1),) if index % 10 == 0 else ()
    labels = {
        'topology.kubernetes.io/region': 'eu-west-1', 'topology.kubernetes.io/zone': zone,
        'failure-domain.beta.kubernetes.io/region': 'eu-west-1', 'failure-domain.beta.kubernetes.io/zone': zone,
        'node.kubernetes.io/instance-type': INSTANCE_TYPES[index % 4],
        'beta.kubernetes.io/instance-type': INSTANCE_TYPES[index % 4],
        'eks.amazonaws.com/nodegroup': pool, 'eks.amazonaws.com/capacityType': 'ON_DEMAND',
        'k8s.io/cloud-provider-aws': _digest(pool)[:32], 'portico.example.com/edge': 'true' if index % 50 == 0 else 'false',
    }
    annotations = {
        'alpha.kubernetes.io/provided-node-ip': internal,
        'csi.volume.kubernetes.io/nodeid': json.dumps({'ebs.csi.aws.com': 'i-%s' % _digest(name)[:17]}),
        'projectcalico.org/IPv4Address': internal + '/19',
        'projectcalico.org/IPv4VXLANTunnelAddr': '10.244.%d.%d' % (index // 255 % 255, index % 255),
    }
    created = _stamp(index * 37)
    obj = objects.node(name, internal_ips=internal, external_ips=external, ready=ready,
                       roles=('control-plane',) if index < 3 else (), labels=labels, annotations=annotations,
                       pod_cidr='10.244.%d.0/24' % (index % 255), uid=_uuid('node', index),
                       created=created, heartbeat=_stamp(index * 37 + 86400 * 300))
    obj['status']['images'] = _images(rng, 20)
    obj['metadata']['resourceVersion'] = str(1000 + index)
    return obj


def _uuid(kind, index):
    d = _digest('%s-%d' % (kind, index))
    return '%s-%s-%s-%s-%s' % (d[:8], d[8:12], d[12:16], d[16:20], d[20:32])


class _NodePorts:
    def __init__(self, rng, low=30000, high=32767):
        self.free = list(range(low, high + 1))
        rng.shuffle(self.free)

    def take(self, count):
        if len(self.free) < count:
            return None
        taken, self.free = self.free[:count], self.free[count:]
        return taken


def _ports(rng):
    count = rng.choices([1, 2, 3, 4], weights=[50, 30, 12, 8])[0]
    if rng.random() < 0.35:
        first = rng.choice(COMMON_PORTS)
    else:
        first = rng.randint(33000, 60999)
    ports = [('http' if count > 1 else None, first, 'TCP')]
    for name, number in rng.sample(EXTRA_PORTS, count - 1):
        ports.append((name, number if rng.random() < 0.5 else rng.randint(33000, 60999), 'TCP'))
    if count > 1 and rng.random() < 0.1:
        name, number, unused = ports[-1]
        ports[-1] = ('dns-udp', number, 'UDP')
    # Port numbers are unique within one service.
    seen, out = set(), []
    for name, number, protocol in ports:
        if (number, protocol) not in seen:
            seen.add((number, protocol))
            out.append((name or ('p%d' % number if count > 1 else None), number, protocol))
    return out


def make_service(index, rng, node_ports, namespaces, heavy=False):
    """One Service; about 20% are drawn NodePort or LoadBalancer (80% in the heavier scenario)."""
    namespace = 'team-%03d' % (index % namespaces)
    name = 'svc-%05d' % index
    draw = rng.random()
    cluster_ip, node_port = (0.20, 0.65) if heavy else (0.80, 0.92)
    stype = 'ClusterIP' if draw < cluster_ip else 'NodePort' if draw < node_port else 'LoadBalancer'
    ports = _ports(rng)
    policy = 'Local' if stype != 'ClusterIP' and rng.random() < (0.25 if heavy else 0.3) else None
    health = None
    if stype != 'ClusterIP':
        wanted = len(ports) + (1 if stype == 'LoadBalancer' and policy == 'Local' else 0)
        allocated = node_ports.take(wanted)
        if allocated is None:
            stype, policy = 'ClusterIP', None
        else:
            if len(allocated) > len(ports):
                health = allocated.pop()
    port_dicts = []
    for i, (pname, number, protocol) in enumerate(ports):
        port_dicts.append(objects.service_port(
            number, name=pname, protocol=protocol, target_port=pname or number,
            node_port=allocated[i] if stype != 'ClusterIP' else None))
    app = 'app-%05d' % index
    labels = {'app.kubernetes.io/name': app, 'app.kubernetes.io/instance': '%s-%s' % (app, namespace),
              'app.kubernetes.io/version': '1.%d.%d' % (index % 40, index % 7),
              'app.kubernetes.io/component': rng.choice(['api', 'web', 'worker', 'db', 'cache']),
              'app.kubernetes.io/part-of': 'product-%d' % (index % 30),
              'app.kubernetes.io/managed-by': 'Helm', 'helm.sh/chart': '%s-0.%d.0' % (app, index % 20)}
    annotations = {'meta.helm.sh/release-name': app, 'meta.helm.sh/release-namespace': namespace,
                   'prometheus.io/scrape': 'true', 'prometheus.io/port': '9102'}
    if stype == 'LoadBalancer':
        annotations['service.beta.kubernetes.io/aws-load-balancer-type'] = 'external'
        annotations['service.beta.kubernetes.io/aws-load-balancer-scheme'] = 'internet-facing'
    obj = objects.service(
        name, namespace, type=stype, ports=port_dicts, selector={'app.kubernetes.io/name': app},
        external_traffic_policy=policy, health_check_node_port=health,
        internal_traffic_policy='Local' if rng.random() < 0.05 else 'Cluster',
        load_balancer_ingress=('203.0.%d.%d' % (index // 250 % 250, index % 250 + 1),) if stype == 'LoadBalancer' else (),
        labels=labels, annotations=annotations, uid=_uuid('svc', index),
        created=_stamp(index * 131), allocate=True)
    if rng.random() < 0.4:
        applied = {'apiVersion': 'v1', 'kind': 'Service',
                   'metadata': {'annotations': dict(annotations), 'labels': labels, 'name': name, 'namespace': namespace},
                   'spec': {k: v for k, v in obj['spec'].items() if k not in ('clusterIP', 'clusterIPs')}}
        obj['metadata']['annotations']['kubectl.kubernetes.io/last-applied-configuration'] = \
            json.dumps(applied, separators=(',', ':'), sort_keys=True) + '\n'
    obj['metadata']['resourceVersion'] = str(100000 + index)
    return obj


def endpoint_slice(service, rng, node_names, index):
    """The EndpointSlice the endpointslice controller keeps for a service: 1-6 pods on random nodes."""
    namespace, name = service['metadata']['namespace'], service['metadata']['name']
    endpoints = []
    for pod in range(rng.choice([1, 2, 2, 3, 3, 4, 6])):
        node_name = rng.choice(node_names)
        endpoints.append(objects.endpoint(
            '10.%d.%d.%d' % (100 + index // 65025 % 100, index // 255 % 255, pod + 1), node_name=node_name,
            ready=rng.random() > 0.05, zone=ZONES[rng.randrange(len(ZONES))],
            target_pod='%s-%s-%05d' % (name, _digest(name)[:10], pod), namespace=namespace))
    ports = [objects.endpoint_port(p.get('targetPort') if isinstance(p.get('targetPort'), int) else p['port'],
                                   name=p.get('name') or '', protocol=p['protocol'])
             for p in service['spec'].get('ports') or []]
    obj = objects.endpointslice(name, namespace, endpoints=endpoints, ports=ports,
                                service_uid=service['metadata']['uid'], uid=_uuid('slice', index),
                                created=service['metadata']['creationTimestamp'])
    obj['metadata']['resourceVersion'] = str(200000 + index)
    return obj


def generate(nodes, services, ready_nodes=None, seed=20251127, heavy=False):
    """(node objects, service objects, endpointslice objects). ready_nodes: only that many nodes are
    Ready (spread over the list, on 127.0.1.x addresses); None: all are Ready. heavy: the heavier
    scenario (see the module's doc); only it has EndpointSlices."""
    rng = random.Random(seed)
    ready_at = set(range(nodes))
    if ready_nodes is not None:
        step = max(nodes // ready_nodes, 1)
        ready_at = set(range(0, step * ready_nodes, step)[:ready_nodes])
    node_objs = []
    ready_seen = 0
    for i in range(nodes):
        address = None
        if ready_nodes is not None and i in ready_at:
            ready_seen += 1
            address = '127.0.1.%d' % ready_seen
        node_objs.append(make_node(i, rng, ready=i in ready_at, address=address))
    node_ports = _NodePorts(rng, *HEAVY_NODE_PORTS) if heavy else _NodePorts(rng)
    namespaces = max(services // 25, 1)
    service_objs = [make_service(i, rng, node_ports, namespaces, heavy) for i in range(services)]
    slices = []
    if heavy:
        names = [n['metadata']['name'] for n in node_objs]
        slices = [endpoint_slice(svc, rng, names, i) for i, svc in enumerate(service_objs)]
    return node_objs, service_objs, slices


def generate_size(size, ready_nodes=None):
    """generate() for a name of SIZES."""
    return generate(*SIZES[size], ready_nodes=ready_nodes, heavy=size in HEAVY)


def describe(node_objs, service_objs, slices=()):
    """Counts and sizes, for the report."""
    types, local = {}, 0
    for svc in service_objs:
        types[svc['spec']['type']] = types.get(svc['spec']['type'], 0) + 1
        local += svc['spec'].get('externalTrafficPolicy') == 'Local'
    node_bytes = sum(len(json.dumps(n, separators=(',', ':'))) for n in node_objs[:50]) / min(len(node_objs), 50)
    svc_bytes = sum(len(json.dumps(s, separators=(',', ':'))) for s in service_objs[:200]) / min(len(service_objs), 200)
    return {'nodes': len(node_objs), 'services': len(service_objs), 'service_types': types,
            'local_services': local, 'endpointslices': len(slices),
            'node_json_bytes_avg': round(node_bytes), 'service_json_bytes_avg': round(svc_bytes)}


if __name__ == '__main__':
    import time
    start = time.perf_counter()
    print(json.dumps(describe(*generate_size(sys.argv[1] if len(sys.argv) > 1 else 'small'))),
          '%.1fs' % (time.perf_counter() - start))
