# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The options that choose services and nodes, shared by the module and the lookup."""

    DOCUMENTATION = r'''
options:
  snapshot:
    description:
      - Read the cluster from this JSON file instead of the API, a Kubernetes C(List) as written by
        C(kubectl get nodes,services,endpointslices -A -o json) (without the EndpointSlices, no service
        of external traffic policy C(Local) is routed). For load-balancer networks that cannot reach
        the API, and for the demo. The connection options are ignored when it is set.
    type: path
  namespaces:
    description:
      - Only consider services in these namespaces. Empty means every namespace.
    type: list
    elements: str
    default: []
  label_selector:
    description:
      - Only consider services matching this Kubernetes label selector, for example
        C(expose=external,tier!=internal).
    type: str
  filter:
    description:
      - A JMESPath expression evaluated on each Service object (as the API returns it); only
        services for which it is true are considered, for example
        C(metadata.annotations."example.com/public" == 'yes').
      - Needs the C(jmespath) Python library.
    type: str
  address_types:
    description:
      - Node address types in order of preference; a node's first valid address of the first
        type it has is used as the backend server address.
    type: list
    elements: str
    choices: [InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS]
    default: [InternalIP, ExternalIP]
  frontend_port:
    description:
      - Which port each frontend binds on the load balancers.
      - V(service_port) binds the service's C(port) (a service on port 80 is reachable on port 80
        of the load balancer); V(node_port) binds the nodePort itself, which never conflicts.
    type: str
    choices: [service_port, node_port]
    default: service_port
  api_timeout:
    description:
      - Seconds to wait for the API server to answer each request.
    type: int
    default: 30
  page_size:
    description:
      - How many objects to ask for per page when listing (the C(limit) parameter).
    type: int
    default: 500
  node_selector:
    description:
      - Only nodes matching this label selector may receive traffic, for example
        C(node-role.kubernetes.io/ingress) or C(topology.kubernetes.io/zone=dc1). Applied by the
        API server, so large clusters read only the nodes they use.
    type: str
  include_control_plane:
    description:
      - Let control-plane nodes (label C(node-role.kubernetes.io/control-plane) or
        C(node-role.kubernetes.io/master)) receive traffic. They are excluded by default.
    type: bool
    default: false
  exclude_cordoned:
    description:
      - Exclude cordoned nodes (C(spec.unschedulable)). By default they are kept, as the cloud
        providers' load balancers do since Kubernetes 1.19, because a cordon stops new pods, not
        kube-proxy.
    type: bool
    default: false
  address_family:
    description:
      - On dual-stack nodes, which address family to use; V(any) takes the first address of the
        preferred type in the order the node lists them.
    type: str
    choices: [any, ipv4, ipv6]
    default: any
  check_kube_proxy:
    description:
      - Health-check each node of a C(Cluster)-policy backend at kube-proxy's C(/healthz) on port
        10256 instead of a TCP connect to the nodePort. kube-proxy answers 503 when it is stale or
        the node is being deleted, so HAProxy takes such a node out between runs.
      - C(Local)-policy LoadBalancer services are always checked on their C(healthCheckNodePort).
    type: bool
    default: false
  backend_subset_size:
    description:
      - At most this many nodes per backend, chosen by rendezvous hashing of the backend and node
        names, so the choice is spread evenly and a node that comes or goes changes only the
        backends that include it. V(0) (the default) puts every eligible node in every backend.
      - Each C(server) line costs HAProxy memory (a few KB) and reload time; 10,000 service ports
        on 5,000 nodes are 50 million lines without subsetting, 30,000 with a subset of 3.
    type: int
    default: 0
  drain_state:
    description:
      - What the previous run served, as it returned it (C(nodes) and C(draining_nodes) of
        RV(portico.k8s.nodeport_info#module:model)). A node that was served and is no longer eligible is kept in every backend
        that serves all nodes, with weight 0, so HAProxy sends it no new connections while
        existing ones finish; it is removed by a later run at least O(drain_seconds) after it
        left. Without it, a node that leaves is removed at once.
      - The P(portico.k8s.haproxy_sync#role) role keeps this state in a file on the controller
        (O(drain_state_file)).
      - A state that names the cluster it was recorded for (its C(source), as the model has it) is
        used only for that cluster (the same API server URL, or the same snapshot file); a state of
        another cluster is ignored with a warning, so its nodes never appear in this one's backends.
      - Anything else than such a state (say a list) fails before the cluster is read.
      - Mutually exclusive with O(drain_state_file).
    type: dict
  drain_state_file:
    description:
      - Read O(drain_state) from this JSON file, as the P(portico.k8s.haproxy_sync#role) role writes it
        after every run; a file that does not exist yet means no state.
      - A file that is not JSON, or not such a state, or cannot be read fails before the cluster is read,
        with a message naming the file; remove it (a node that leaves in the next run is then removed
        at once instead of draining) or give another file. A state of another cluster is ignored with
        a warning.
      - Read where the module runs (the controller, when delegated to C(localhost) as the role does).
    type: path
    version_added: 0.3.0
  drain_seconds:
    description:
      - How long a node that left drains, at least. With V(0) it drains until the next run.
    type: int
    default: 0
  annotation_prefix:
    description:
      - Per-service settings are read from the Service's annotations under this prefix, for example
        C(portico.io/mode=http). Only these annotations are kept when a service is read.
      - Every value is parsed against an allow-list; a bad value excludes the service with the
        reason in RV(portico.k8s.nodeport_info#module:model.excluded_services), an unknown annotation under
        the prefix is ignored with a warning in RV(portico.k8s.nodeport_info#module:model.warnings). The annotations and
        their values are listed in the collection's README (Per-service annotations).
    type: str
    default: portico.io/
    version_added: 0.2.0
  expose_by_default:
    description:
      - Expose services that have no C(<prefix>expose) annotation. With V(false), only services
        annotated C(<prefix>expose=true) are exposed; the others are listed as excluded.
    type: bool
    default: true
    version_added: 0.2.0
  port_conflict:
    description:
      - What happens to the younger of two services that want the same frontend port (or a port in
        O(reserved_ports)). The older one always keeps it.
      - V(exclude) leaves the younger out, with the reason. V(allocate) gives it a free port from
        O(allocate_range), picked from a hash of its namespace, name and port (then the next free
        one), so it stays the same across runs while the services stay the same; the port is named
        in RV(portico.k8s.nodeport_info#module:model.warnings).
      - Ports that some service asks for, and O(reserved_ports), are never allocated.
    type: str
    choices: [exclude, allocate]
    default: exclude
    version_added: 0.2.0
  allocate_range:
    description:
      - The ports O(port_conflict=allocate) hands out, as C(low-high), within 1024-65535.
    type: str
    default: 20000-29999
    version_added: 0.2.0
  reserved_ports:
    description:
      - Ports no frontend may bind, such as the base configuration's own C(bind) lines and a stats
        port. A service that asks for one is treated as a port conflict.
      - The P(portico.k8s.haproxy_sync#role) role passes the ports bound in its base template.
    type: list
    elements: int
    default: []
    version_added: 0.2.0
  metrics_ports:
    description:
      - The ports of the load balancers' metrics frontends (HAProxy's Prometheus exporter and stats
        page). No frontend gets one, as with O(reserved_ports); a service that asks for one is treated
        as a port conflict, and the reason says it is the metrics port.
      - The P(portico.k8s.haproxy_sync#role) role passes the C(haproxy_sync_metrics_port) of every load
        balancer that sets C(haproxy_sync_metrics_address).
    type: list
    elements: int
    default: []
    version_added: 0.3.0
  address_pools:
    description:
      - The external addresses that LoadBalancer Services Portico implements get (see
        O(load_balancer_class)). Each pool is a dict with C(name) and C(addresses); an address entry is a
        CIDR (V(192.0.2.0/28); for IPv4 its network and broadcast addresses are left out), a range
        (V(192.0.2.10-192.0.2.20)) or one address, IPv4 or IPv6. Pools may not overlap. The first
        pool is the default.
      - A Service gets C(spec.loadBalancerIP) if set, else the address of its C(<prefix>address)
        annotation, else one from the pool its C(<prefix>address-pool) annotation names, else one from
        the default pool. It keeps the address its C(status.loadBalancer.ingress) already holds; a new one
        is the lowest free address of the pool. Of two Services that ask for one address, the older
        keeps it, unless both carry the same C(<prefix>allow-shared-ip) key and no port of theirs clashes.
      - A Service whose address is refused (an exhausted pool, an address in no pool, or taken) is
        listed in RV(portico.k8s.nodeport_info#module:model.excluded_services) with the reason.
      - Its frontends bind its own address and its own C(port)s, so Services on different addresses
        never compete for a port. What to write on each Service's status is in
        RV(portico.k8s.nodeport_info#module:model.load_balancers).
    type: list
    elements: dict
    default: []
    version_added: 0.3.0
  load_balancer_class:
    description:
      - The C(spec.loadBalancerClass) of the LoadBalancer Services Portico implements, giving each its
        own address from O(address_pools) and writing it to its status. LoadBalancer Services of other
        classes are served on the shared ports as NodePort ones are, and get no address.
    type: str
    default: portico.io/haproxy
    version_added: 0.3.0
  default_load_balancer:
    description:
      - Portico is the cluster's default load balancer implementation, so LoadBalancer Services with no
        C(spec.loadBalancerClass) get an address too.
    type: bool
    default: false
    version_added: 0.3.0
  allow_no_nodes:
    description:
      - Accept a model in which no node is eligible. By default that fails, because every
        backend would be empty and the load balancers would refuse all traffic.
    type: bool
    default: false
'''
