#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: nodeport_info
short_description: Read a cluster's NodePort services and nodes into a routing model for HAProxy
version_added: 0.1.0
description:
  - Lists Nodes and Services straight from the Kubernetes API (paged, as raw JSON) or from a
    snapshot file, and computes the routing model that the P(portico.k8s.haproxy_sync#role) role
    renders into C(haproxy.cfg).
  - Services of type C(NodePort) and C(LoadBalancer) with a nodePort are exposed, one frontend
    and one backend per TCP service port. UDP and SCTP ports are excluded with a reason.
  - A node is eligible when it is not being deleted (no C(deletionTimestamp), no
    C(ToBeDeletedByClusterAutoscaler) taint), its C(Ready) condition is C(True), it does not carry
    the label C(node.kubernetes.io/exclude-from-external-load-balancers), it is not a control-plane
    node (unless O(include_control_plane)), it is not cordoned when O(exclude_cordoned) is set, it
    matches O(node_selector), and it has an address of a type in O(address_types) (and family
    O(address_family)). Every excluded node is listed with the rule that excluded it.
  - Services with C(externalTrafficPolicy=Local) are sent only to the nodes that host a ready
    endpoint (read from their EndpointSlices); LoadBalancer services of that policy are
    health-checked on their C(healthCheckNodePort) at C(/healthz), as cloud load balancers do.
  - Two services that want the same frontend port are resolved by age; the older service keeps
    the port, the younger is listed in RV(model.excluded_services) with the reason, or gets a
    free port of O(allocate_range) with O(port_conflict=allocate).
  - Per-service settings come from annotations under O(annotation_prefix) (mode, balance, health
    check, PROXY protocol, timeouts, maxconn, frontend port, bind address, ports, host names).
    C(http) services with C(hosts) share one frontend per port, routed by the Host header; C(tcp)
    services with C(hosts) share one by TLS SNI (passthrough). A host claimed twice on one port
    stays with the older service; the younger is excluded with the reason.
  - A service with a C(tls-secret) annotation has TLS terminated on its frontend with the
    certificate and key of that Secret (type C(kubernetes.io/tls), in the service's namespace).
    The Secret is checked (PEM chain, an unencrypted RSA key of at least 2048 bits or an ECDSA key
    on P-256, P-384 or P-521, belonging to the first certificate); a Secret that is missing,
    unreadable or malformed excludes that service with the reason. Terminated services with
    C(hosts) share a port; the certificate is chosen by SNI (a younger service whose certificate
    could be chosen for an older one's host is excluded), and C(http) ones are routed by the Host
    header, C(tcp) ones by SNI. C(tls-redirect-port) adds a plain-HTTP port that redirects to HTTPS.
  - Every value that comes from the cluster is checked against a strict allow-list before it
    can reach the model, and again by the guard of the renderer of C(haproxy.cfg); anything else
    is excluded with a reason.
  - The module changes nothing anywhere. Private keys never appear in its result. With
    O(seal_key), the TLS bundles the model's certificates name are returned sealed in
    RV(sealed_certificates) for the role to install; without it they are not returned at all.
options:
  model_format:
    description:
      - How the model is returned.
      - V(dict) returns it as RV(model).
      - V(json) returns it as JSON text in RV(model_json), with its RV(summary) beside it. Ansible
        then handles one string instead of every value of the model, which saves seconds per run
        in a large cluster. Read it with P(ansible.builtin.from_json#filter). The role collects
        the model so.
      - Either way, the values of the module's C(no_log) options (the token, the seal key) never
        appear in it.
    type: str
    choices: [dict, json]
    default: dict
    version_added: 0.3.0
  seal_key:
    description:
      - Text of at least 32 random characters. When given, RV(sealed_certificates) holds each TLS
        bundle (certificate chain and private key) sealed with AES-256-GCM under this key, bound
        to its file name.
      - The P(portico.k8s.haproxy_sync#role) role makes a new key for every run and keeps it in
        memory only, so a sealed bundle that outlives the run is of no use.
    type: str
    version_added: 0.2.0
author:
  - Portico maintainers (@portico-k8s)
extends_documentation_fragment:
  - portico.k8s.k8s_auth
  - portico.k8s.routing
  - portico.k8s.attributes.info_module
  - portico.k8s.attributes.action_group
requirements:
  - kubernetes >= 30.1.0 (the Kubernetes Python client)
  - jmespath (only for O(filter))
  - cryptography (only for services with a C(tls-secret) annotation)
notes:
  - The account needs C(list) on C(nodes), C(services) and, when a selected service has
    C(externalTrafficPolicy=Local), on C(endpointslices) in the C(discovery.k8s.io) API group;
    C(get) on the C(secrets) that C(tls-secret) annotations name. The README has the ClusterRole.
'''

EXAMPLES = r'''
- name: Read the routing model with the default kubeconfig
  portico.k8s.nodeport_info:
  register: routing

- name: Only services labelled for the edge, in two namespaces, bound on their nodePorts
  portico.k8s.nodeport_info:
    host: https://k8s.example.com:6443
    api_key: "{{ lookup('ansible.builtin.env', 'EDGE_TOKEN') }}"
    ca_cert: /etc/portico/cluster-ca.crt
    namespaces: [shop, payments]
    label_selector: exposure=edge
    frontend_port: node_port
  register: routing

- name: Read from a snapshot made with kubectl get nodes,services,endpointslices -A -o json
  portico.k8s.nodeport_info:
    snapshot: /var/lib/portico/cluster.json

- name: Carry the connection once for every portico.k8s module in a play
  module_defaults:
    group/portico.k8s.k8s:
      kubeconfig: /etc/portico/kubeconfig
      context: production
  block:
    - name: Read the model
      portico.k8s.nodeport_info:
        filter: "metadata.annotations.\"example.com/public\" == 'true'"
      register: routing

- name: Show what is excluded and why
  ansible.builtin.debug:
    msg: "{{ routing.model.excluded_services }}"
'''

RETURN = r'''
model:
  description:
    - The routing model (with O(model_format=dict), the default). It is factored, with the eligible
      nodes once, and each backend names its nodePort and which nodes serve it. Lists are sorted,
      so the same cluster state gives the same model whatever order the API returns objects in.
  returned: when O(model_format=dict)
  type: dict
  contains:
    source:
      description:
        - Where the model was read from (C(kind) V(api) with C(server), or V(snapshot) with the path),
          and when reading began (C(read_at), seconds since the epoch). From the API, C(resource_version)
          is the node list's resourceVersion. The load balancers keep a newer model rather than install
          an older one, comparing resourceVersions when both came from the same API server, else
          C(read_at).
      type: dict
      sample: {kind: api, server: "https://10.0.0.1:6443", resource_version: "48213", services_seen: 42,
               read_at: 1795752206.271}
    nodes:
      description: Eligible nodes, by name, each with its address in HAProxy notation (IPv6 in brackets).
      type: list
      elements: dict
      sample: [{name: worker-1, address: 192.168.10.21}, {name: worker-2, address: "[fd00:10::22]"}]
    excluded_nodes:
      description: Nodes that receive no traffic, each with the reason.
      type: list
      elements: dict
      sample: [{name: worker-3, reason: not Ready (Ready condition is False)}]
    frontends:
      description:
        - One per frontend port, by port.
        - A port of one service has its C(backend) and C(route_by) null. A port shared by host name
          (C(route_by) V(host), named C(hosts.<port>)) or TLS SNI (V(sni), named C(sni.<port>)) has
          C(routes), each with the C(host), the HAProxy match (C(match) V(str) or V(end) and its
          C(value)), the C(backend) and the C(service), exact names first; its C(backend) is null
          unless a service on it takes the hosts no route names (annotation C(host-default)).
        - C(bind_address) (null means the role's C(haproxy_sync_bind_address)), C(accept_proxy),
          C(maxconn) and C(timeout_client) come from the service's annotations (of the oldest
          service on a shared port).
        - C(tls) is null, or C(certificates), the files of RV(model.certificates) to bind with
          (the first is served to clients that send no matching SNI).
        - A plain-HTTP redirect port (named C(redirect.<port>)) has C(redirect_port), the HTTPS port
          it sends clients to; on a port shared by Host header, such routes have C(redirect_port)
          instead of a C(backend).
        - A LoadBalancer Service with an address of its own (O(address_pools)) has C(address), bound as
          C(bind_address); its frontends are named after its section (C(<namespace>.<service>.<port>),
          C(hosts.<section>), C(redirect.<section>)), and they are sorted by port, then address.
      type: list
      elements: dict
      sample: [{name: guestbook.frontend.80, port: 80, mode: tcp, backend: guestbook.frontend.80,
                service: guestbook/frontend, service_port: 80, route_by: null, routes: [],
                redirect_port: null, tls: null,
                bind_address: null, accept_proxy: false, maxconn: null, timeout_client: null}]
    backends:
      description:
        - One per exposed service port, by name (C(<namespace>.<service>.<port>)).
        - C(nodes) is V(all) (every eligible node) or a list of node names (C(Local) traffic
          policy, or O(backend_subset_size)).
        - C(check) says how HAProxy checks each server; type V(tcp) (a connect to the nodePort)
          or V(http) with the C(path) (and C(port) of a kube-proxy health endpoint), optionally
          C(method), C(status), C(interval), C(rise) and C(fall) from annotations.
        - C(mode), C(balance), C(proxy_protocol) (V(none), V(v1), V(v2)) and C(timeout_connect),
          C(timeout_server), C(timeout_tunnel) (null means the base template's) come from annotations.
      type: list
      elements: dict
      sample: [{name: guestbook.frontend.80, service: guestbook/frontend, namespace: guestbook,
                service_name: frontend, port_name: "", service_port: 80, node_port: 30080,
                mode: tcp, balance: roundrobin, traffic_policy: Cluster, check: {type: tcp},
                proxy_protocol: none, timeout_connect: null, timeout_server: null, timeout_tunnel: null,
                nodes: all}]
    services:
      description: Exposed services and their backends.
      type: list
      elements: dict
      sample: [{service: guestbook/frontend, backends: [guestbook.frontend.80]}]
    excluded_services:
      description: Services or service ports that are not exposed, each with the reason. C(port) is null when the whole service is excluded.
      type: list
      elements: dict
      sample: [{service: dns/coredns-ext, port: 53/UDP, reason: UDP ports cannot be balanced by HAProxy}]
    warnings:
      description:
        - Settings that were ignored or adjusted, each with the service, port (or null) and reason
          (an unknown annotation, a port allocated after a conflict, a shared port's settings).
      type: list
      elements: dict
      sample: [{service: shop/api, port: 80/TCP, reason: "frontend port 80 is already taken by the older service shop/web; allocated frontend port 24817"}]
    certificates:
      description:
        - The TLS certificates the frontends use, by file; public facts only (never the key).
        - C(names) are the DNS names of the first certificate, C(not_after) its expiry (UTC),
          C(not_before) when it becomes valid (C(not_yet_valid) until then, with a warning in
          RV(model.warnings)), C(fingerprint) the SHA-256 of that certificate.
      type: list
      elements: dict
      sample: [{secret: shop/web-tls, file: shop_web-tls.pem, names: [shop.example.com],
                not_after: "2027-03-01T12:00:00Z", expired: false, not_before: "2026-03-01T12:00:00Z",
                not_yet_valid: false, fingerprint: 6c1f...}]
    load_balancers:
      description:
        - For each LoadBalancer Service Portico implements (O(load_balancer_class)), and each Service
          whose status Portico wrote but no longer serves, what to write on its C(status.loadBalancer)
          and the Event that says so; M(portico.k8s.load_balancer_status) writes them.
        - C(address) and C(pool) are null for a Service that gets no address (the Event says why);
          C(current) is its status as read, C(ingress) what it should be, C(write) whether they differ;
          C(event) is null when there is nothing new to tell.
        - C(uid) and C(resource_version) are those read, so that a write never lands on a newer Service.
      type: list
      elements: dict
      sample: [{service: shop/web, namespace: shop, name: web, uid: 6c0f5a52-..., resource_version: "4711",
                address: 192.0.2.17, pool: public, current: [],
                ingress: [{ip: 192.0.2.17, ipMode: Proxy, ports: [{port: 443, protocol: TCP}]}], write: true,
                event: {reason: AddressAssigned, type: Normal, note: assigned 192.0.2.17 from pool public}}]
      version_added: 0.3.0
    summary:
      description: Counts of the lists above.
      type: dict
      sample: {nodes: 2, excluded_nodes: 1, services: 3, frontends: 3, backends: 3, excluded_services: 1}
model_json:
  description:
    - With O(model_format=json), the model of RV(model) as JSON text.
  returned: when O(model_format=json)
  type: str
  sample: '{"source": {"kind": "api", "server": "https://10.0.0.1:6443"}, "nodes": [], "frontends": []}'
  version_added: 0.3.0
summary:
  description:
    - With O(model_format=json), the summary of the model (RV(model.summary)).
  returned: when O(model_format=json)
  type: dict
  sample: {nodes: 2, excluded_nodes: 1, services: 3, frontends: 3, backends: 3, excluded_services: 1}
  version_added: 0.3.0
generation:
  description:
    - A short hash of what the model makes a load balancer serve (its nodes, draining nodes,
      frontends, backends and certificate files); an unchanged cluster gives the same generation,
      whatever its resourceVersion or the time it was read. Each load balancer records the
      generation it serves; C(playbooks/status.yml) compares the two to tell drift.
  returned: always
  type: str
  sample: 3f2a9c1d0e4b7a65
  version_added: 0.3.0
sealed_certificates:
  description:
    - With O(seal_key), each certificate file of RV(model.certificates) and its TLS bundle
      (chain then key, PEM) sealed under that key, as base64 text.
  returned: when O(seal_key) is given
  type: dict
  sample: {shop_web-tls.3f2a9c1d0e4b.pem: "q3v...=="}
  version_added: 0.2.0
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.portico.k8s.plugins.module_utils._client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    connection_argument_spec,
)
from ansible_collections.portico.k8s.plugins.module_utils._cluster import (
    HAS_JMESPATH,
    JMESPATH_IMPORT_ERROR,
)
from ansible_collections.portico.k8s.plugins.module_utils._collect import (
    collect,
    model_argument_spec,
    model_text,
)
from ansible_collections.portico.k8s.plugins.module_utils._report import generation
from ansible_collections.portico.k8s.plugins.module_utils._seal import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    SealError,
    seal_bundles,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(model_argument_spec())
    argument_spec.update(seal_key=dict(type='str', no_log=True),
                         model_format=dict(type='str', choices=['dict', 'json'], default='dict'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    if not module.params['snapshot'] and not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=KUBERNETES_IMPORT_ERROR)
    if module.params['filter'] and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib('jmespath'), exception=JMESPATH_IMPORT_ERROR)

    if module.params['seal_key'] is not None and not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib('cryptography'), exception=CRYPTOGRAPHY_IMPORT_ERROR)

    try:
        model, bundles = collect(module.params.get, module.warn)
    except KubeError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False, generation=generation(model))
    if module.params['model_format'] == 'json':
        try:
            result.update(model_json=model_text(model, module.no_log_values), summary=model['summary'])
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    else:
        result['model'] = model
    if module.params['seal_key'] is not None:
        try:
            result['sealed_certificates'] = seal_bundles(module.params['seal_key'], bundles)
        except SealError as exc:
            module.fail_json(msg='seal_key: %s' % exc)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
