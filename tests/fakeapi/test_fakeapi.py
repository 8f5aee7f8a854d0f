"""The fake API server against real clients (kubectl, the kubernetes Python client) and
against responses captured from a real kube-apiserver."""

import base64
import http.client
import json
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import time

import pytest

from tests.fakeapi import objects
from tests.fakeapi.server import FakeKubeAPI, FakeAPIError, decode_continue, encode_continue

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
DEFAULT = object()
NODE_NAMES = ["cp-1", "worker-1", "worker-2", "worker-3"]


# ---------------------------------------------------------------- helpers

def call(api, path, *, token=DEFAULT, method="GET", body=None, accept="application/json"):
    """(status, decoded JSON or text) of one HTTPS request to the fake server."""
    conn = _connection(api)
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {api.token if token is DEFAULT else token}"
    payload = json.dumps(body) if body is not None else None
    if payload:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    is_json = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, json.loads(data) if is_json else data.decode()


def _connection(api):
    context = ssl.create_default_context(cafile=str(api.ca_path))
    return http.client.HTTPSConnection(api.host, api.port, context=context, timeout=10)


def names(items):
    return [i["metadata"]["name"] for i in items]


def token_of(body):
    raw = body["metadata"]["continue"]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def load(captures, name):
    return json.loads((captures / name).read_text())


def key_paths(value, prefix=""):
    """Every key path in value (list items merged, managedFields' field sets left out)."""
    paths = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}"
            paths.add(path)
            if key != "fieldsV1":
                paths |= key_paths(inner, path)
    elif isinstance(value, list):
        for inner in value:
            paths |= key_paths(inner, prefix + "[]")
    return paths


def kubectl(kubeconfig, tmp_path, *args):
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    command = [KUBECTL, "--request-timeout=10s", f"--cache-dir={tmp_path / 'kube-cache'}", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def core_api(api, token=None):
    from kubernetes import client
    config = client.Configuration(host=api.url, api_key={"BearerToken": token or api.token},
                                  api_key_prefix={"BearerToken": "Bearer"})
    config.verify_ssl = True
    config.ssl_ca_cert = str(api.ca_path)
    return client.ApiClient(config)


# ---------------------------------------------------------------- kubectl

@needs_kubectl
def test_kubectl_json_output_lists_nodes_and_services(fakeapi_cluster, fakeapi_kubeconfig, tmp_path):
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "nodes", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert names(json.loads(result.stdout)["items"]) == NODE_NAMES
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "svc", "-A", "-o", "json")
    assert result.returncode == 0, result.stderr
    found = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in json.loads(result.stdout)["items"]]
    assert found == [("default", "kubernetes"), ("dns", "coredns-ext"), ("guestbook", "ext-db"),
                     ("guestbook", "frontend"), ("guestbook", "headless"), ("guestbook", "redis"),
                     ("monitoring", "grafana")]


@needs_kubectl
def test_kubectl_default_output_is_served_as_a_table(fakeapi_cluster, fakeapi_kubeconfig, tmp_path):
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "nodes")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [(row[0], row[1], row[2]) for row in lines[1:]] == [
        ("cp-1", "Ready", "control-plane"), ("worker-1", "Ready", "<none>"),
        ("worker-2", "Ready", "<none>"), ("worker-3", "NotReady", "<none>")]
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "svc", "-A")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0][:3] == ["NAMESPACE", "NAME", "TYPE"]
    assert ["guestbook", "frontend", "NodePort", "10.96.148.206", "<none>", "80:30080/TCP"] in [
        row[:6] for row in lines]
    tables = [r for r in fakeapi_cluster.requests if r.path == "/api/v1/services" and "as=Table" in r.accept]
    assert tables and all(r.status == 200 for r in tables)


@needs_kubectl
def test_kubectl_reads_tls_secrets(fakeapi, fakeapi_kubeconfig, tmp_path):
    fakeapi.create(objects.tls_secret("web-tls", "shop", cert_pem="CERT", key_pem="KEY"))
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "secrets", "-n", "shop")
    assert result.returncode == 0, result.stderr
    assert [line.split()[:3] for line in result.stdout.splitlines()] == [
        ["NAME", "TYPE", "DATA"], ["web-tls", "kubernetes.io/tls", "2"]]
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "secret", "web-tls", "-n", "shop", "-o", "json")
    assert result.returncode == 0, result.stderr
    secret = json.loads(result.stdout)
    assert secret["type"] == "kubernetes.io/tls" and base64.b64decode(secret["data"]["tls.key"]) == b"KEY"
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "secret", "nope", "-n", "shop")
    assert result.returncode != 0 and 'secrets "nope" not found' in result.stderr


@needs_kubectl
def test_kubectl_with_a_wrong_token_is_unauthorized(fakeapi_cluster, tmp_path):
    kubeconfig = fakeapi_cluster.write_kubeconfig(tmp_path / "bad-kubeconfig", token="not-the-token")
    result = kubectl(kubeconfig, tmp_path, "get", "nodes", "-o", "json")
    assert result.returncode != 0
    assert "You must be logged in to the server" in result.stderr
    assert {r.status for r in fakeapi_cluster.requests} == {401}


# ---------------------------------------------------------------- the kubernetes Python client

def test_python_client_follows_continue_tokens(fakeapi_cluster):
    from kubernetes import client
    with core_api(fakeapi_cluster) as api_client:
        core = client.CoreV1Api(api_client)
        first = core.list_node(limit=2)
        assert names(i.to_dict() for i in first.items) == NODE_NAMES[:2]
        assert first.metadata.remaining_item_count == 2
        pages, seen, token = 1, [i.metadata.name for i in first.items], first.metadata._continue
        while token:
            page = core.list_node(limit=2, _continue=token)
            pages, token = pages + 1, page.metadata._continue
            seen += [i.metadata.name for i in page.items]
    assert (pages, seen) == (2, NODE_NAMES)


def test_python_client_raw_json_and_other_groups(fakeapi_cluster):
    from kubernetes import client
    with core_api(fakeapi_cluster) as api_client:
        raw = client.CoreV1Api(api_client).list_service_for_all_namespaces(_preload_content=False)
        body = json.loads(raw.data)
        slices = client.DiscoveryV1Api(api_client).list_endpoint_slice_for_all_namespaces()
    assert (body["kind"], body["apiVersion"], len(body["items"])) == ("ServiceList", "v1", 7)
    assert "kind" not in body["items"][0]
    assert [s.metadata.labels["kubernetes.io/service-name"] for s in slices.items] == ["grafana"]


def test_python_client_sees_401_for_a_wrong_token(fakeapi_cluster):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    with core_api(fakeapi_cluster, token="wrong") as api_client, pytest.raises(ApiException) as caught:
        client.CoreV1Api(api_client).list_node()
    assert caught.value.status == 401
    assert json.loads(caught.value.body)["reason"] == "Unauthorized"


# ---------------------------------------------------------------- shapes of the real server's answers

def test_error_bodies_are_the_real_servers(fakeapi_cluster, fakeapi_captures_dir):
    fakeapi_cluster.add_token("lb-reader", "system:serviceaccount:default:lb-reader", forbidden=["nodes"])
    bad_continue = base64.urlsafe_b64encode(b"nope").decode().rstrip("=")
    cases = {
        "error-401-bad-token.json": ("/api/v1/nodes", "not-a-token"),
        "error-403-anonymous.json": ("/api/v1/nodes", None),
        "error-403-forbidden.json": ("/api/v1/nodes", "lb-reader"),
        "error-404.json": ("/api/v1/namespaces/default/services/nope", DEFAULT),
        "error-bad-continue.json": (f"/api/v1/nodes?continue={bad_continue}", DEFAULT),
    }
    for name, (path, token) in cases.items():
        expected = load(fakeapi_captures_dir, name)
        status, body = call(fakeapi_cluster, path, token=token)
        assert (status, body) == (expected["code"], expected), name


def test_paged_lists_match_the_real_servers(fakeapi, fakeapi_captures_dir):
    page1, page2 = (load(fakeapi_captures_dir, f"nodes-page{n}-limit2.json") for n in (1, 2))
    fakeapi.load_list({"kind": "NodeList", "items": page1["items"] + page2["items"]})
    status, ours1 = call(fakeapi, "/api/v1/nodes?limit=2")
    assert status == 200
    assert list(ours1) == list(page1) and list(ours1["metadata"]) == list(page1["metadata"])
    assert ours1["items"] == page1["items"]
    assert ours1["metadata"]["remainingItemCount"] == page1["metadata"]["remainingItemCount"]
    assert token_of(ours1) == {**token_of(page1), "rv": int(ours1["metadata"]["resourceVersion"])}
    status, ours2 = call(fakeapi, f"/api/v1/nodes?limit=2&continue={ours1['metadata']['continue']}")
    assert status == 200
    assert list(ours2["metadata"]) == list(page2["metadata"]) and ours2["items"] == page2["items"]
    assert ours2["metadata"]["resourceVersion"] == ours1["metadata"]["resourceVersion"]


def test_discovery_documents_match_the_real_servers(fakeapi, fakeapi_captures_dir):
    files = {"/version": "version.json", "/api": "discovery-api.json", "/apis": "discovery-apis.json",
             "/api/v1": "discovery-api-v1.json"}
    ours = {}
    for path, name in files.items():
        status, ours[path] = call(fakeapi, path)
        assert status == 200 and list(ours[path]) == list(load(fakeapi_captures_dir, name)), path
    real_resources = {r["name"]: r for r in load(fakeapi_captures_dir, "discovery-api-v1.json")["resources"]}
    assert {r["name"] for r in ours["/api/v1"]["resources"]} >= {"nodes", "services", "endpoints", "namespaces"}
    for resource in ours["/api/v1"]["resources"]:
        assert resource == real_resources[resource["name"]]
    real_groups = {g["name"]: g for g in load(fakeapi_captures_dir, "discovery-apis.json")["groups"]}
    assert [g == real_groups[g["name"]] for g in ours["/apis"]["groups"]] == [True]
    status, group_v1 = call(fakeapi, "/apis/discovery.k8s.io/v1")
    assert [(r["name"], r["kind"], r["namespaced"]) for r in group_v1["resources"]] == [
        ("endpointslices", "EndpointSlice", True)]


def test_a_loaded_cluster_list_is_served_back_unchanged(fakeapi, fakeapi_captures_dir):
    expected = load(fakeapi_captures_dir, "cluster-list.json")
    fakeapi.load_list(fakeapi_captures_dir / "cluster-list.json")
    served = []
    for path in ("/api/v1/nodes", "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"):
        status, body = call(fakeapi, path)
        kind = body["kind"][:-len("List")]
        served += [{"apiVersion": body["apiVersion"], "kind": kind, **item} for item in body["items"]]
    assert served == expected["items"]
    assert fakeapi.dump_list() == expected


def test_raw_lists_with_managed_fields_round_trip(fakeapi, fakeapi_captures_dir):
    for name, path in (("services-list.json", "/api/v1/services"),
                       ("endpointslices-list.json", "/apis/discovery.k8s.io/v1/endpointslices")):
        expected = load(fakeapi_captures_dir, name)
        fakeapi.load_list(expected)
        status, body = call(fakeapi, path)
        assert (status, body["kind"], body["items"]) == (200, expected["kind"], expected["items"]), name


def test_built_objects_have_the_real_objects_fields(fakeapi_captures_dir):
    def identity(obj):
        # A built EndpointSlice's name is generated; the service it serves names it.
        labels = obj["metadata"].get("labels", {})
        return obj["kind"], labels.get("kubernetes.io/service-name", obj["metadata"]["name"])
    built = {identity(o): o for o in objects.sample_cluster()}
    real = load(fakeapi_captures_dir, "cluster-list.json")["items"]
    real.append({"kind": "Service", **load(fakeapi_captures_dir, "services-list.json")["items"][-1]})
    for obj in real:
        missing = key_paths(obj) - key_paths(built[identity(obj)]) - {".metadata.resourceVersion"}
        assert not missing, (identity(obj), missing)


# ---------------------------------------------------------------- paging and snapshots

def test_an_expired_continue_token_is_410_with_a_fresh_token(fakeapi_cluster):
    unused, page1 = call(fakeapi_cluster, "/api/v1/nodes?limit=2")
    fakeapi_cluster.add_node(objects.node("worker-4", internal_ips=["192.168.10.24"]))
    fakeapi_cluster.compact()
    status, body = call(fakeapi_cluster, f"/api/v1/nodes?limit=2&continue={page1['metadata']['continue']}")
    assert (status, body["kind"], body["reason"], body["code"]) == (410, "Status", "Expired", 410)
    assert "start a new list without the continue parameter" in body["message"]
    assert token_of(body) == {"v": "meta.k8s.io/v1", "rv": -1, "start": "worker-1\x00"}
    status, rest = call(fakeapi_cluster, f"/api/v1/nodes?limit=5&continue={body['metadata']['continue']}")
    assert status == 200 and names(rest["items"]) == ["worker-2", "worker-3", "worker-4"]


def test_later_pages_come_from_the_first_pages_snapshot(fakeapi_cluster):
    api = fakeapi_cluster
    unused, page1 = call(api, "/api/v1/nodes?limit=2")
    worker2 = api.get("nodes", "worker-2")
    worker2["metadata"]["labels"]["changed"] = "yes"
    api.replace_node(worker2)
    api.delete_node("worker-3")
    api.add_node(objects.node("worker-9"))
    unused, page2 = call(api, f"/api/v1/nodes?limit=10&continue={page1['metadata']['continue']}")
    assert names(page2["items"]) == ["worker-2", "worker-3"]
    assert "changed" not in page2["items"][0]["metadata"]["labels"]
    assert page2["metadata"]["resourceVersion"] == page1["metadata"]["resourceVersion"]
    unused, now = call(api, "/api/v1/nodes")
    assert names(now["items"]) == ["cp-1", "worker-1", "worker-2", "worker-9"]
    assert int(now["metadata"]["resourceVersion"]) == int(page1["metadata"]["resourceVersion"]) + 3


def test_namespaced_pages_and_keys_sort_like_etcd(fakeapi_cluster):
    unused, page = call(fakeapi_cluster, "/api/v1/services?limit=3")
    assert token_of(page)["start"] == "guestbook/ext-db\x00" and page["metadata"]["remainingItemCount"] == 4
    unused, guestbook = call(fakeapi_cluster, "/api/v1/namespaces/guestbook/services?limit=2")
    assert token_of(guestbook)["start"] == "frontend\x00"
    token = guestbook["metadata"]["continue"]
    unused, rest = call(fakeapi_cluster, f"/api/v1/namespaces/guestbook/services?continue={token}")
    assert names(rest["items"]) == ["headless", "redis"] and "continue" not in rest["metadata"]


def test_continue_tokens_are_checked_like_the_real_server(fakeapi_cluster):
    future = encode_continue("cp-1\x00", fakeapi_cluster.resource_version + 10)
    cases = {
        "!!!": "illegal base64 data at input byte 0",
        encode_continue("a", 0): "incorrect encoded start resourceVersion",
        encode_continue("", 5): "encoded start key empty",
        encode_continue("../x", 5): "continue key is not valid: ../x",
        base64.urlsafe_b64encode(b'{"v":"x","rv":1}').decode().rstrip("="): "does not recognize this encoded version",
    }
    for token, message in cases.items():
        status, body = call(fakeapi_cluster, f"/api/v1/nodes?continue={token}")
        assert (status, body["reason"]) == (400, "BadRequest") and message in body["message"], token
    status, body = call(fakeapi_cluster, f"/api/v1/nodes?continue={future}")
    assert (status, body["reason"]) == (500, "InternalError")
    assert decode_continue(encode_continue("worker-1\x00", 7)) == ("worker-1\x00", 7)


# ---------------------------------------------------------------- selectors

@pytest.mark.parametrize("selector, expected", [
    ("node-role.kubernetes.io/control-plane", ["cp-1"]),
    ("!node-role.kubernetes.io/control-plane", NODE_NAMES[1:]),
    ("kubernetes.io/hostname in (worker-1, worker-2)", ["worker-1", "worker-2"]),
    ("kubernetes.io/hostname notin (worker-1),kubernetes.io/os=linux", ["cp-1", "worker-2", "worker-3"]),
    ("kubernetes.io/hostname!=cp-1", NODE_NAMES[1:]),
    ("kubernetes.io/hostname==cp-1", ["cp-1"]),
    ("", NODE_NAMES),
])
def test_label_selectors(fakeapi_cluster, selector, expected):
    items, unused = fakeapi_cluster.list_page("nodes", query={"labelSelector": [selector]})
    assert names(items) == expected


def test_field_selectors_and_bad_selectors(fakeapi_cluster):
    api = fakeapi_cluster
    assert names(api.list_page("nodes", query={"fieldSelector": ["metadata.name=worker-2"]})[0]) == ["worker-2"]
    selector = "metadata.namespace=guestbook,spec.type!=ExternalName"
    services, unused = api.list_page("services", query={"fieldSelector": [selector]})
    assert names(services) == ["frontend", "headless", "redis"]
    for query, message in (({"fieldSelector": ["spec.foo=1"]}, "field label not supported: spec.foo"),
                           ({"labelSelector": ["a in b"]}, "unable to parse requirement")):
        with pytest.raises(FakeAPIError) as caught:
            api.list_page("nodes", query=query)
        assert caught.value.code == 400 and message in caught.value.status["message"]


def test_a_selected_page_has_no_remaining_item_count(fakeapi_cluster):
    unused, page = call(fakeapi_cluster, "/api/v1/nodes?limit=1&labelSelector=!node-role.kubernetes.io/control-plane")
    assert names(page["items"]) == ["worker-1"]
    assert "continue" in page["metadata"] and "remainingItemCount" not in page["metadata"]


# ---------------------------------------------------------------- authorization, routes, tables

def test_forbidden_messages_name_the_scope(fakeapi_cluster):
    api = fakeapi_cluster
    api.add_token("narrow", "alice", forbidden=["services", "endpointslices"])
    unused, body = call(api, "/api/v1/namespaces/guestbook/services", token="narrow")
    assert body["message"] == ('services is forbidden: User "alice" cannot list resource "services" '
                               'in API group "" in the namespace "guestbook"')
    unused, body = call(api, "/apis/discovery.k8s.io/v1/namespaces/monitoring/endpointslices/x", token="narrow")
    assert body["message"].startswith('endpointslices.discovery.k8s.io "x" is forbidden: User "alice" cannot get')
    assert body["details"] == {"name": "x", "group": "discovery.k8s.io", "kind": "endpointslices"}
    assert call(api, "/api/v1/nodes", token="narrow")[0] == 200
    assert call(api, "/version", token=None)[0] == 200
    status, body = call(api, "/api", token=None)
    assert (status, body["message"]) == (403, 'forbidden: User "system:anonymous" cannot get path "/api"')


def test_unknown_paths_and_unsupported_verbs(fakeapi_cluster):
    for path in ("/api/v1/pods", "/api/v1/services/frontend", "/api/v1/namespaces/x/nodes", "/nope"):
        status, body = call(fakeapi_cluster, path)
        assert (status, body["reason"], body["details"]) == (404, "NotFound", {}), path
    status, body = call(fakeapi_cluster, "/api/v1/nodes?watch=true")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")
    status, body = call(fakeapi_cluster, "/apis/discovery.k8s.io/v1/namespaces/monitoring/endpointslices/nope")
    assert body["message"] == 'endpointslices.discovery.k8s.io "nope" not found'


def test_gets_and_namespaces(fakeapi_cluster):
    status, svc = call(fakeapi_cluster, "/api/v1/namespaces/guestbook/services/frontend")
    assert (status, svc["kind"], svc["apiVersion"]) == (200, "Service", "v1")
    assert svc["spec"]["ports"][0]["nodePort"] == 30080
    status, node = call(fakeapi_cluster, "/api/v1/nodes/cp-1")
    assert (node["kind"], node["metadata"]["name"]) == ("Node", "cp-1")
    unused, namespaces = call(fakeapi_cluster, "/api/v1/namespaces")
    assert names(namespaces["items"]) == ["default", "dns", "guestbook", "kube-node-lease", "kube-public",
                                          "kube-system", "monitoring"]
    assert call(fakeapi_cluster, "/api/v1/namespaces/guestbook")[1]["status"] == {"phase": "Active"}


def test_table_answers(fakeapi_cluster):
    status, body = call(fakeapi_cluster, "/api/v1/nodes", accept=TABLE_ACCEPT)
    assert (status, body["kind"], body["apiVersion"]) == (200, "Table", "meta.k8s.io/v1")
    assert [c["name"] for c in body["columnDefinitions"]][:5] == ["Name", "Status", "Roles", "Age", "Version"]
    assert [r["cells"][:2] for r in body["rows"]][-1] == ["worker-3", "NotReady"]
    assert body["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    unused, body = call(fakeapi_cluster, "/apis/discovery.k8s.io/v1/endpointslices?includeObject=None", accept=TABLE_ACCEPT)
    assert body["rows"] == [{"cells": [body["rows"][0]["cells"][0], "IPv4", "3000", "10.244.1.5",
                                       body["rows"][0]["cells"][4]]}]
    status, body = call(fakeapi_cluster, "/api/v1/nodes", accept="application/vnd.kubernetes.protobuf,application/json")
    assert (status, body["kind"]) == (200, "NodeList")


# ---------------------------------------------------------------- writes

def test_http_writes_default_allocate_and_conflict(fakeapi_cluster):
    api = fakeapi_cluster
    path = "/api/v1/namespaces/shop/services"
    minimal = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "web"}}}
    status, created = call(api, path, method="POST", body=minimal)
    assert status == 201
    port = created["spec"]["ports"][0]
    assert (port["protocol"], port["targetPort"]) == ("TCP", 80) and 30000 <= port["nodePort"] <= 32767
    assert created["spec"]["clusterIP"] and created["metadata"]["managedFields"]
    assert call(api, "/api/v1/namespaces/shop")[0] == 200
    assert call(api, path, method="POST", body=minimal)[1]["reason"] == "AlreadyExists"
    stale = {**minimal, "metadata": {"name": "web", "resourceVersion": "1"}}
    assert call(api, f"{path}/web", method="PUT", body=stale)[1]["reason"] == "Conflict"
    status, updated = call(api, f"{path}/web", method="PUT", body=minimal)
    assert status == 200 and updated["spec"]["ports"][0]["nodePort"] == port["nodePort"]
    taken = {**minimal, "metadata": {"name": "web2"},
             "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}
    status, body = call(api, path, method="POST", body=taken)
    assert (status, body["reason"]) == (422, "Invalid") and "already allocated" in body["message"]
    status, deleted = call(api, f"{path}/web", method="DELETE")
    assert (status, deleted["kind"]) == (200, "Service")
    assert call(api, f"{path}/web")[0] == 404


def test_python_writes_bump_resource_versions(fakeapi):
    rv = fakeapi.resource_version
    node = fakeapi.add_node(objects.node("n1"))
    assert node["metadata"]["resourceVersion"] == str(rv + 1)
    stale = dict(node)
    fakeapi.replace_node(node)
    with pytest.raises(FakeAPIError) as caught:
        fakeapi.replace_node(stale)
    assert caught.value.reason == "Conflict"
    svc = fakeapi.add_service(objects.service("lb", "apps", type="LoadBalancer", ports=[443],
                                              external_traffic_policy="Local", allocate=False))
    assert svc["spec"]["healthCheckNodePort"] and svc["spec"]["ports"][0]["nodePort"]
    fakeapi.add_endpointslice(objects.endpointslice("lb", "apps", endpoints=[objects.endpoint("10.244.2.2")],
                                                    ports=[443]))
    assert [s["metadata"]["generation"] for s in fakeapi.list("endpointslices", "apps")] == [1]
    deleted = fakeapi.delete_service("apps", "lb")
    assert deleted["metadata"]["resourceVersion"] == str(fakeapi.resource_version)
    assert fakeapi.list("services", "apps") == []


# ---------------------------------------------------------------- faults

def test_injected_status_and_delay(fakeapi_cluster):
    api = fakeapi_cluster
    api.fault("/api/v1/nodes", status=503, times=1)
    assert call(api, "/api/v1/nodes")[1]["reason"] == "ServiceUnavailable"
    assert call(api, "/api/v1/nodes")[0] == 200
    api.fault("/api/v1/nodes", status=500, body={"custom": True},
              when=lambda request: "continue" in request.query)
    unused, page1 = call(api, "/api/v1/nodes?limit=2")
    assert call(api, f"/api/v1/nodes?limit=2&continue={page1['metadata']['continue']}") == (500, {"custom": True})
    api.clear_faults()
    api.fault("/version", delay=0.3)
    started = time.monotonic()
    assert call(api, "/version")[0] == 200 and time.monotonic() - started >= 0.3


def test_injected_truncation_and_dropped_connections(fakeapi_cluster):
    api = fakeapi_cluster
    api.fault("/api/v1/nodes", truncate=100, times=1)
    with pytest.raises(http.client.IncompleteRead):
        call(api, "/api/v1/nodes")
    api.fault("/api/v1/services", drop=True, times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(api, "/api/v1/services")
    assert call(api, "/api/v1/services")[0] == 200
    assert api.errors == []


# ---------------------------------------------------------------- lifecycle and command line

def test_stop_and_restart_on_the_same_port(fakeapi_certdir):
    api = FakeKubeAPI(fakeapi_certdir)
    with api:
        port = api.port
        assert api.url == f"https://127.0.0.1:{port}" and call(api, "/version")[0] == 200
        api.stop()
        with pytest.raises(OSError):
            _connection(api).request("GET", "/version")
        api.start()
        assert api.port == port and call(api, "/version")[0] == 200


def test_the_command_line_serves_a_state_file(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps(objects.cluster_list(objects.sample_cluster())))
    command = [sys.executable, "-m", "tests.fakeapi.server", "--state", str(state), "--port", "0",
               "--token", "cli-token", "--certdir", str(tmp_path / "certs")]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), context=context, timeout=10)
        conn.request("GET", "/api/v1/nodes", headers={"Authorization": "Bearer cli-token"})
        assert names(json.loads(conn.getresponse().read())["items"]) == NODE_NAMES
        conn.close()
        assert (tmp_path / "certs" / "kubeconfig").exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
