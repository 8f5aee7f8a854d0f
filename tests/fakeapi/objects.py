"""Builders of Node, Service, EndpointSlice and Secret dicts shaped like kube-apiserver's.

Every builder returns a complete object (kind, apiVersion, metadata with uid,
creationTimestamp, labels, annotations and managedFields, and the defaults the API
server fills in), ready to hand to `FakeKubeAPI.create()` or to a model under test.
resourceVersion is left to the server, which assigns it on write.
"""

import base64
import copy
import datetime
import hashlib
import ipaddress
import itertools
import json
import threading
import uuid

NODE_PORT_RANGE = (30000, 32767)
SERVICE_CIDR_V4 = ipaddress.ip_network("10.96.0.0/12")
SERVICE_CIDR_V6 = ipaddress.ip_network("fd00:10:96::/112")

# Go's struct field order, so that JSON bodies read like the real server's.
METADATA_ORDER = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)
TOP_LEVEL_ORDER = ("kind", "apiVersion", "metadata", "addressType", "endpoints", "ports",
                   "spec", "status", "data", "type")


def now():
    """The current time as the API server writes timestamps (UTC, whole seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid():
    return str(uuid.uuid4())


def ordered(obj, order=TOP_LEVEL_ORDER):
    """A copy of obj with top-level (in order) and metadata keys in the real server's order."""
    out = {k: obj[k] for k in order if k in obj}
    out.update({k: v for k, v in obj.items() if k not in out})
    meta = out.get("metadata")
    if isinstance(meta, dict):
        fixed = {k: meta[k] for k in METADATA_ORDER if k in meta}
        fixed.update({k: v for k, v in meta.items() if k not in fixed})
        out["metadata"] = fixed
    return out


class Allocator:
    """Hands out node ports and cluster IPs that do not repeat within a process."""

    def __init__(self, first_node_port=32000, first_ip_index=100):
        self._lock = threading.Lock()
        self._ports = itertools.count(first_node_port - NODE_PORT_RANGE[0])
        self._ips = itertools.count(first_ip_index)

    def node_port(self):
        low, high = NODE_PORT_RANGE
        with self._lock:
            return low + next(self._ports) % (high - low + 1)

    def cluster_ip(self, family="IPv4"):
        cidr = SERVICE_CIDR_V4 if family == "IPv4" else SERVICE_CIDR_V6
        with self._lock:
            index = next(self._ips) % (cidr.num_addresses - 2) + 1
        return str(cidr[index])


ALLOCATOR = Allocator()


def _metadata(name, namespace=None, *, labels=None, annotations=None, uid=None, created=None,
              generation=None):
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["uid"] = uid or new_uid()
    if generation is not None:
        meta["generation"] = generation
    meta["creationTimestamp"] = created or now()
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


# ---------------------------------------------------------------- managedFields

# Lists whose items server-side apply tracks by these keys rather than as a whole.
_KEYED_LISTS = {
    "ports": ("port", "protocol"),
    "conditions": ("type",),
    "addresses": ("type", "address"),
    "taints": ("key", "effect"),
}
_SET_LISTS = {"podCIDRs", "finalizers"}
_GRANULAR_MAPS = {"labels", "annotations"}


def _fields(value, key=None):
    """The FieldsV1 tree of one value, close to what the real server records."""
    if isinstance(value, dict):
        inner = {f"f:{k}": _fields(v, k) for k, v in value.items()}
        if key in _GRANULAR_MAPS:
            return {".": {}, **inner}
        return {} if key == "selector" else inner
    if isinstance(value, list) and key in _SET_LISTS:
        return {".": {}, **{f"v:{json.dumps(v)}": {} for v in value}}
    if isinstance(value, list) and key in _KEYED_LISTS and all(isinstance(v, dict) for v in value):
        return {".": {}, **{_item_key(v, _KEYED_LISTS[key]): {".": {}, **_fields(v)} for v in value}}
    return {}


def _item_key(item, keys):
    ident = {k: item[k] for k in keys if k in item}
    return "k:" + json.dumps(ident, separators=(",", ":"), sort_keys=True)


def managed_fields_entry(obj, sections, *, manager, api_version, time=None, subresource=None):
    """One managedFields entry claiming the given top-level sections of obj."""
    tree = {}
    meta = {k: obj["metadata"][k] for k in ("labels", "annotations") if k in obj["metadata"]}
    if "metadata" in sections and meta:
        tree["f:metadata"] = _fields(meta)
    for section in sections:
        if section != "metadata" and section in obj:
            value = obj[section]
            # Top-level lists (an EndpointSlice's endpoints and ports) are atomic.
            tree[f"f:{section}"] = _fields(value, section if isinstance(value, dict) else None)
    entry = {"manager": manager, "operation": "Update", "apiVersion": api_version,
             "time": time or obj["metadata"].get("creationTimestamp") or now(),
             "fieldsType": "FieldsV1", "fieldsV1": dict(sorted(tree.items()))}
    if subresource:
        entry["subresource"] = subresource
    return entry


def with_managed_fields(obj, manager="kubectl-create"):
    """obj with a managedFields entry for its spec-like sections, as a plain create records."""
    out = copy.deepcopy(obj)
    sections = [k for k in out if k not in ("kind", "apiVersion", "status")]
    entry = managed_fields_entry(out, sections, manager=manager,
                                 api_version=out.get("apiVersion", "v1"))
    out["metadata"]["managedFields"] = [entry]
    return ordered(out)


# ---------------------------------------------------------------- nodes

_CONDITION_TEXT = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
}


def node_condition(ctype, status, reason, message, heartbeat=None, transition=None):
    return {"type": ctype, "status": status, "lastHeartbeatTime": heartbeat or now(),
            "lastTransitionTime": transition or heartbeat or now(), "reason": reason,
            "message": message}


def _node_conditions(ready, heartbeat, created):
    """The four kubelet conditions; an unreachable node has them all Unknown."""
    if ready is None or ready == "Unknown":
        return [node_condition(t, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.",
                               heartbeat, created)
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")]
    conditions = [node_condition(t, "False", r, m, heartbeat, created)
                  for t, (r, m) in _CONDITION_TEXT.items()]
    if ready:
        conditions.append(node_condition("Ready", "True", "KubeletReady",
                                         "kubelet is posting ready status", heartbeat, created))
    else:
        conditions.append(node_condition(
            "Ready", "False", "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
            "message:Network plugin returns error: cni plugin not initialized", heartbeat, created))
    return conditions


def _node_taints(ready, roles, unschedulable):
    """The taints kubeadm and the node lifecycle controller would have put there."""
    taints = []
    if "control-plane" in roles:
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    if ready is None or ready == "Unknown":
        taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                       "timeAdded": now()})
    elif not ready:
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    if unschedulable:
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                       "timeAdded": now()})
    return taints


def _node_labels(name, roles, arch, labels):
    out = {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
           "kubernetes.io/arch": arch, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    out.update({f"node-role.kubernetes.io/{role}": "" for role in roles})
    if "control-plane" in roles:
        out["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    out.update(labels or {})
    return out


def _node_addresses(name, internal_ips, external_ips):
    addresses = [{"type": "InternalIP", "address": ip} for ip in internal_ips]
    addresses += [{"type": "ExternalIP", "address": ip} for ip in external_ips]
    addresses.append({"type": "Hostname", "address": name})
    return addresses


def _node_info(name, kubelet_version, arch):
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {"machineID": digest[:32], "systemUUID": str(uuid.UUID(digest[32:64])),
            "bootID": str(uuid.UUID(digest[:32])), "kernelVersion": "6.1.0-25-amd64",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.7.22", "kubeletVersion": kubelet_version,
            "kubeProxyVersion": kubelet_version, "operatingSystem": "linux", "architecture": arch}


def _node_images(kubelet_version):
    return [
        {"names": [f"registry.k8s.io/kube-proxy@sha256:{hashlib.sha256(kubelet_version.encode()).hexdigest()}",
                   f"registry.k8s.io/kube-proxy:{kubelet_version}"], "sizeBytes": 30207900},
        {"names": ["registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
                   "registry.k8s.io/pause:3.10"], "sizeBytes": 320368},
    ]


def default_node_ip(name):
    """A stable InternalIP for a node name, so that nodes built without one differ."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"192.168.{digest[0]}.{digest[1] % 253 + 1}"


def node(name, *, internal_ips=None, external_ips=(), ready=True, roles=(),
         labels=None, annotations=None, taints=None, unschedulable=False,
         kubelet_version="v1.31.0", arch="amd64", pod_cidr="10.244.0.0/24", uid=None,
         created=None, heartbeat=None):
    """A Node as a kubeadm-joined kubelet reports it.

    internal_ips: one address or several (IPv4 and IPv6); default_node_ip(name) if None.
    ready: True, False (NotReady) or None (Unknown: the kubelet stopped reporting).
    taints: None for the ones kubeadm and the node controller set from roles/readiness.
    """
    created = created or now()
    internal_ips = default_node_ip(name) if internal_ips is None else internal_ips
    ip_list = [internal_ips] if isinstance(internal_ips, str) else list(internal_ips)
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    if unschedulable:
        spec["unschedulable"] = True
    taint_list = _node_taints(ready, roles, unschedulable) if taints is None else list(taints)
    if taint_list:
        spec["taints"] = taint_list
    status = {
        "capacity": {"cpu": "4", "ephemeral-storage": "61202244Ki", "hugepages-2Mi": "0",
                     "memory": "8148440Ki", "pods": "110"},
        "allocatable": {"cpu": "4", "ephemeral-storage": "56403987978", "hugepages-2Mi": "0",
                        "memory": "8046040Ki", "pods": "110"},
        "conditions": _node_conditions(ready, heartbeat or now(), created),
        "addresses": _node_addresses(name, ip_list, list(external_ips)),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": _node_info(name, kubelet_version, arch),
        "images": _node_images(kubelet_version),
    }
    node_annotations = {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                        "node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    node_annotations.update(annotations or {})
    obj = {"kind": "Node", "apiVersion": "v1",
           "metadata": _metadata(name, labels=_node_labels(name, roles, arch, labels),
                                 annotations=node_annotations, uid=uid, created=created),
           "spec": spec, "status": status}
    obj["metadata"]["managedFields"] = [
        managed_fields_entry(obj, ["metadata", "spec"], manager="kubelet", api_version="v1"),
        managed_fields_entry(obj, ["status"], manager="kubelet", api_version="v1",
                             time=status["conditions"][-1]["lastHeartbeatTime"], subresource="status"),
    ]
    return ordered(obj)


def is_ready(node_obj):
    """Whether a Node's Ready condition is True."""
    for cond in node_obj.get("status", {}).get("conditions", []):
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


# ---------------------------------------------------------------- services

def service_port(port, *, name=None, protocol="TCP", target_port=None, node_port=None,
                 app_protocol=None):
    """One entry of spec.ports; name may be omitted only on single-port services."""
    out = {}
    if name is not None:
        out["name"] = name
    out["protocol"] = protocol
    if app_protocol:
        out["appProtocol"] = app_protocol
    out["port"] = port
    out["targetPort"] = port if target_port is None else target_port
    if node_port is not None:
        out["nodePort"] = node_port
    return out


def _named(port):
    name = port.get("name") or f"{port['protocol'].lower()}-{port['port']}"
    return {"name": name, **{k: v for k, v in port.items() if k != "name"}}


def _ports(ports):
    out = [service_port(p) if isinstance(p, int) else dict(p) for p in ports]
    # The API server requires a name on every port of a multi-port service.
    return [_named(p) for p in out] if len(out) > 1 else out


def _allocate_ports(ports, allocator):
    for port in ports:
        port.setdefault("nodePort", allocator.node_port())


def _family_policy(families, policy):
    if policy:
        return policy
    return "PreferDualStack" if len(families) > 1 else "SingleStack"


def _cluster_ips(families, cluster_ip, cluster_ips, allocator, allocate):
    if cluster_ips:
        return list(cluster_ips)
    if cluster_ip:
        return [cluster_ip]
    return [allocator.cluster_ip(f) for f in families] if allocate else []


def service(name, namespace="default", *, type="ClusterIP", ports=(), selector=None,
            cluster_ip=None, cluster_ips=None, headless=False, external_name=None,
            external_traffic_policy=None, health_check_node_port=None,
            internal_traffic_policy="Cluster", ip_families=("IPv4",), ip_family_policy=None,
            external_ips=(), load_balancer_ingress=(), load_balancer_class=None,
            session_affinity="None", labels=None, annotations=None, uid=None, created=None,
            allocate=True, allocator=None):
    """A Service with the defaults and allocations the API server fills in.

    ports: ints or `service_port()` dicts. NodePort and LoadBalancer ports get a
    nodePort and LoadBalancer+Local a healthCheckNodePort unless given; allocate=False
    leaves missing allocations (and a missing clusterIP) to the server.
    load_balancer_ingress: IPs or hostnames to report in status.loadBalancer.ingress.
    """
    allocator = allocator or ALLOCATOR
    if type == "ExternalName":
        spec = _external_name_spec(external_name, selector, session_affinity)
    else:
        spec = _cluster_spec(type, _ports(ports), selector, headless, cluster_ip, cluster_ips,
                             ip_families, allocate, allocator)
        spec.update(_traffic_fields(type, external_ips, session_affinity, external_traffic_policy,
                                    health_check_node_port, allocate, allocator))
        spec["ipFamilies"] = list(ip_families)
        spec["ipFamilyPolicy"] = _family_policy(ip_families, ip_family_policy)
        if type == "LoadBalancer":
            spec["allocateLoadBalancerNodePorts"] = True
            if load_balancer_class:
                spec["loadBalancerClass"] = load_balancer_class
        spec["internalTrafficPolicy"] = internal_traffic_policy
    obj = {"kind": "Service", "apiVersion": "v1",
           "metadata": _metadata(name, namespace, labels=labels if labels is not None else {"app": name},
                                 annotations=annotations, uid=uid, created=created),
           "spec": spec, "status": {"loadBalancer": _lb_status(load_balancer_ingress)}}
    return with_managed_fields(obj)


def _external_name_spec(external_name, selector, session_affinity):
    spec = {"type": "ExternalName", "sessionAffinity": session_affinity,
            "externalName": external_name or "db.example.com"}
    if selector:
        spec = {"selector": dict(selector), **spec}
    return spec


def _cluster_spec(stype, ports, selector, headless, cluster_ip, cluster_ips, families, allocate,
                  allocator):
    if stype in ("NodePort", "LoadBalancer") and allocate:
        _allocate_ports(ports, allocator)
    spec = {}
    if ports:
        spec["ports"] = ports
    if selector is not None:
        spec["selector"] = dict(selector)
    ips = ["None"] if headless else _cluster_ips(families, cluster_ip, cluster_ips, allocator, allocate)
    if ips:
        spec["clusterIP"] = ips[0]
        spec["clusterIPs"] = ips
    spec["type"] = stype
    return spec


def _traffic_fields(stype, external_ips, session_affinity, policy, health_port, allocate, allocator):
    out = {}
    if external_ips:
        out["externalIPs"] = list(external_ips)
    out["sessionAffinity"] = session_affinity
    if stype in ("NodePort", "LoadBalancer"):
        out["externalTrafficPolicy"] = policy or "Cluster"
    if stype == "LoadBalancer" and out.get("externalTrafficPolicy") == "Local":
        if health_port is None and allocate:
            health_port = allocator.node_port()
        if health_port is not None:
            out["healthCheckNodePort"] = health_port
    return out


def _lb_status(ingress):
    entries = []
    for value in ingress:
        try:
            ipaddress.ip_address(value)
            entries.append({"ip": value, "ipMode": "VIP"})
        except ValueError:
            entries.append({"hostname": value})
    return {"ingress": entries} if entries else {}


# ---------------------------------------------------------------- endpointslices

def endpoint(addresses, *, node_name=None, ready=True, serving=None, terminating=False,
             zone=None, target_pod=None, namespace=None):
    """One entry of an EndpointSlice's endpoints, as the endpointslice controller writes it."""
    out = {"addresses": [addresses] if isinstance(addresses, str) else list(addresses),
           "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                          "terminating": terminating}}
    if target_pod:
        out["targetRef"] = {"kind": "Pod", "namespace": namespace or "default", "name": target_pod,
                            "uid": new_uid()}
    if node_name:
        out["nodeName"] = node_name
    if zone:
        out["zone"] = zone
    return out


def endpoint_port(port, *, name="", protocol="TCP", app_protocol=None):
    out = {"name": name, "protocol": protocol, "port": port}
    if app_protocol:
        out["appProtocol"] = app_protocol
    return out


def endpointslice(service_name, namespace="default", *, endpoints=(), ports=(), name=None,
                  address_type="IPv4", labels=None, service_uid=None, uid=None, created=None):
    """An EndpointSlice the endpointslice controller would keep for a Service.

    ports: ints or `endpoint_port()` dicts; service_uid adds the owner reference.
    """
    suffix = hashlib.sha256(f"{namespace}/{service_name}/{address_type}".encode()).hexdigest()[:5]
    slice_labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    "kubernetes.io/service-name": service_name}
    slice_labels.update(labels or {})
    meta = _metadata(name or f"{service_name}-{suffix}", namespace, labels=slice_labels, uid=uid,
                     created=created, generation=1)
    meta["generateName"] = f"{service_name}-"
    if service_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": service_name,
                                    "uid": service_uid, "controller": True,
                                    "blockOwnerDeletion": True}]
    obj = {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": meta,
           "addressType": address_type, "endpoints": [dict(e) for e in endpoints],
           "ports": [endpoint_port(p) if isinstance(p, int) else dict(p) for p in ports]}
    return with_managed_fields(obj, manager="kube-controller-manager")


def secret(name, namespace="default", *, type="Opaque", data=None, labels=None, annotations=None,
           uid=None, created=None):
    """A Secret as the API server returns it: data values base64-encoded (data: str or bytes values)."""
    encoded = {key: base64.b64encode(value.encode() if isinstance(value, str) else value).decode()
               for key, value in (data or {}).items()}
    obj = {"kind": "Secret", "apiVersion": "v1",
           "metadata": _metadata(name, namespace, labels=labels, annotations=annotations, uid=uid, created=created),
           "data": encoded, "type": type}
    return with_managed_fields(obj)


def tls_secret(name, namespace="default", *, cert_pem, key_pem, **kwargs):
    """A Secret of type kubernetes.io/tls, as cert-manager or `kubectl create secret tls` writes it."""
    return secret(name, namespace, type="kubernetes.io/tls", data={"tls.crt": cert_pem, "tls.key": key_pem}, **kwargs)


# ---------------------------------------------------------------- lists

def cluster_list(objects):
    """A v1 List of objects, as `kubectl get nodes,services,endpointslices -A -o json` prints."""
    items = []
    for obj in objects:
        item = copy.deepcopy(obj)
        item.get("metadata", {}).pop("managedFields", None)
        items.append(item)
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def sample_cluster():
    """The fixture cluster's topology with its addresses and ports: a control plane, three
    workers (worker-2 dual-stack, worker-3 NotReady), a NodePort service with UDP and TCP
    on 53, a NodePort, a LoadBalancer with externalTrafficPolicy Local, a ClusterIP, a
    headless and an ExternalName service, and grafana's EndpointSlice on worker-1."""
    grafana = service("grafana", "monitoring", type="LoadBalancer", cluster_ip="10.96.174.118",
                      ports=[service_port(3000, name="http", node_port=31300)], selector={"app": "grafana"},
                      external_traffic_policy="Local", health_check_node_port=32071)
    return [
        node("cp-1", internal_ips=["192.168.10.10"], roles=("control-plane",)),
        node("worker-1", internal_ips=["192.168.10.21"]),
        node("worker-2", internal_ips=["192.168.10.22", "fd00:10::22"]),
        node("worker-3", internal_ips=["192.168.10.23"], ready=False),
        service("kubernetes", "default", ports=[service_port(443, name="https", target_port=6443)],
                labels={"component": "apiserver", "provider": "kubernetes"}, cluster_ip="10.96.0.1"),
        service("coredns-ext", "dns", type="NodePort", selector={"app": "coredns-ext"}, cluster_ip="10.96.248.64",
                ports=[service_port(53, name="dns", protocol="UDP", node_port=30053),
                       service_port(53, name="dns-tcp", protocol="TCP", node_port=30054)]),
        service("ext-db", "guestbook", type="ExternalName", external_name="db.example.com",
                selector={"app": "ext-db"}),
        service("frontend", "guestbook", type="NodePort", cluster_ip="10.96.148.206",
                ports=[service_port(80, node_port=30080)], selector={"app": "frontend"}),
        service("headless", "guestbook", headless=True, selector={"app": "headless"}),
        service("redis", "guestbook", cluster_ip="10.96.80.162", ports=[6379], selector={"app": "redis"}),
        grafana,
        endpointslice("grafana", "monitoring", ports=[endpoint_port(3000, name="http")],
                      endpoints=[endpoint("10.244.1.5", node_name="worker-1",
                                          target_pod="grafana-7d9c8b6f5-x2x4k", namespace="monitoring")],
                      service_uid=grafana["metadata"]["uid"]),
    ]
