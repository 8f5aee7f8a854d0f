"""The fake API server against real clients (kubectl, the kubernetes Python client) and
against responses captured from a real kube-apiserver."""

import base64
import http.client
import json
import os
import pathlib
import re
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

def call(api, path, *, token=DEFAULT, method="GET", body=None, accept="application/json",
         content_type="application/json", user_agent=None):
    """(status, decoded JSON or text) of one HTTPS request to the fake server."""
    conn = _connection(api)
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {api.token if token is DEFAULT else token}"
    if user_agent:
        headers["User-Agent"] = user_agent
    payload = json.dumps(body) if body is not None else None
    if payload:
        headers["Content-Type"] = content_type
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
    served = [g["name"] for g in ours["/apis"]["groups"]]
    assert served == [name for name in real_groups if name in served] == ["events.k8s.io", "discovery.k8s.io"]
    assert all(g == real_groups[g["name"]] for g in ours["/apis"]["groups"])
    assert call(fakeapi, "/apis/events.k8s.io/v1") == (200, load(fakeapi_captures_dir, "discovery-events-v1.json"))
    assert "services/status" in {r["name"] for r in ours["/api/v1"]["resources"]}
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


# ---------------------------------------------------------------- the status subresource of Services

SHOP = "/api/v1/namespaces/shop/services"
MERGE = "application/merge-patch+json"
INGRESS = [{"ip": "192.0.2.10", "ipMode": "Proxy", "ports": [{"port": 443, "protocol": "TCP"}]}]


def shop_api(api, **spec):
    """Create shop/api as the recorded one was (kubectl create, LoadBalancer with Local policy)."""
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "labels": {"app": "api"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "api"}, "externalTrafficPolicy": "Local",
                     "healthCheckNodePort": 32000,
                     "ports": [{"name": "https", "port": 443, "nodePort": 30443},
                               {"name": "metrics", "port": 9000, "nodePort": 30900}], **spec}}
    status, created = call(api, f"{SHOP}?fieldManager=kubectl-create", method="POST", body=body)
    assert status == 201, created
    return created


def patch_status(api, body, name="api", **kwargs):
    return call(api, f"{SHOP}/{name}/status", method="PATCH", body=body, content_type=MERGE, **kwargs)


def without_times(entries):
    """managedFields without their times, by manager (writes within a second sort by manager name)."""
    return sorted(({k: v for k, v in e.items() if k != "time"} for e in entries), key=lambda e: e.get("manager", ""))


def test_status_patch_answers_like_the_real_server(fakeapi, fakeapi_captures_dir):
    expected = load(fakeapi_captures_dir, "service-status-patch.json")
    created = shop_api(fakeapi)
    assert created["status"] == {"loadBalancer": {}}
    status, body = patch_status(fakeapi, {"status": {"loadBalancer": {"ingress": INGRESS}}}, user_agent="curl/8.5.0")
    assert status == 200
    assert key_paths(body) == key_paths(expected)
    assert list(body["metadata"]) == list(expected["metadata"]) and list(body["spec"]) == list(expected["spec"])
    assert body["status"] == expected["status"]
    assert without_times(body["metadata"]["managedFields"]) == without_times(expected["metadata"]["managedFields"])
    assert int(body["metadata"]["resourceVersion"]) == int(created["metadata"]["resourceVersion"]) + 1
    assert {k: v for k, v in body["spec"].items() if k not in ("clusterIP", "clusterIPs")} == {
        k: v for k, v in expected["spec"].items() if k not in ("clusterIP", "clusterIPs")}
    assert call(fakeapi, f"{SHOP}/api/status") == (200, body) and call(fakeapi, f"{SHOP}/api") == (200, body)


def test_status_errors_are_the_real_servers(fakeapi, fakeapi_captures_dir):
    current = shop_api(fakeapi)
    fakeapi.add_token("viewer-token", "viewer", forbidden=[("patch", "services/status")])
    stale = {"metadata": {"resourceVersion": str(int(current["metadata"]["resourceVersion"]) - 1)},
             "status": {"loadBalancer": {"ingress": INGRESS}}}
    bogus = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "Bogus"}]}}}
    cases = {
        "error-409-status-conflict.json": ("api", stale, DEFAULT),
        "error-422-status-invalid.json": ("api", bogus, DEFAULT),
        "error-404-status-missing.json": ("nope", bogus, DEFAULT),
        "error-403-status-forbidden.json": ("api", bogus, "viewer-token"),
    }
    for name, (service, body, token) in cases.items():
        expected = load(fakeapi_captures_dir, name)
        assert patch_status(fakeapi, body, service, token=token) == (expected["code"], expected), name
    assert call(fakeapi, f"{SHOP}/api", token="viewer-token")[0] == 200
    assert fakeapi.get("services", "api", "shop") == {"kind": "Service", "apiVersion": "v1", **current}
    status, body = call(fakeapi, f"{SHOP}/api/status", method="PATCH", body=bogus, content_type="text/plain")
    assert (status, body["reason"], "details" in body) == (415, "UnsupportedMediaType", False)
    assert body["message"] == ("the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/strategic-merge-patch+json, application/apply-patch+yaml")
    assert call(fakeapi, f"{SHOP}/api/status", method="POST", body=bogus)[1]["reason"] == "MethodNotAllowed"
    assert call(fakeapi, f"{SHOP}/api/proxy")[0] == 404


@pytest.mark.parametrize("ingress, spec, errors", [
    ([{"ip": "192.0.2.10", "ipMode": "Bogus"}], {},
     [("FieldValueNotSupported", "status.loadBalancer.ingress[0].ipMode",
       'Unsupported value: "Bogus": supported values: "Proxy", "VIP"')]),
    ([{"hostname": "lb.example.com", "ipMode": "Proxy"}], {},
     [("FieldValueForbidden", "status.loadBalancer.ingress[0].ipMode",
       "Forbidden: may not be specified when `ip` is not set")]),
    ([{"ip": "192.0.2.10"}, {"ip": "not-an-ip"}], {},
     [("FieldValueInvalid", "status.loadBalancer.ingress[1].ip",
       'Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')]),
    ([{"ip": "192.0.2.010"}], {},
     [("FieldValueInvalid", "status.loadBalancer.ingress[0].ip",
       'Invalid value: "192.0.2.010": must not have leading 0s')]),
    ([{"hostname": "192.0.2.10"}], {},
     [("FieldValueInvalid", "status.loadBalancer.ingress[0].hostname",
       'Invalid value: "192.0.2.10": must be a DNS name, not an IP address')]),
    ([{"ip": "192.0.2.10"}], {"type": "NodePort"},
     [("FieldValueForbidden", "status.loadBalancer.ingress",
       "Forbidden: may only be used when `spec.type` is 'LoadBalancer'")]),
])
def test_status_is_validated_as_the_real_server_does(fakeapi, ingress, spec, errors):
    if spec:
        body = {"metadata": {"name": "api"}, "spec": {"ports": [{"port": 80}], **spec}}
        assert call(fakeapi, SHOP, method="POST", body=body)[0] == 201
    else:
        shop_api(fakeapi)
    status, body = patch_status(fakeapi, {"status": {"loadBalancer": {"ingress": ingress}}})
    assert (status, body["reason"]) == (422, "Invalid")
    assert [(c["reason"], c["field"], c["message"]) for c in body["details"]["causes"]] == errors
    field, message = errors[0][1:]
    assert body["message"] == f'Service "api" is invalid: {field}: {message}'


def test_status_writes_change_only_status_and_metadata(fakeapi):
    shop_api(fakeapi)
    body = {"metadata": {"labels": {"app": "api", "seen": "yes"}}, "spec": {"type": "ClusterIP"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ports": [{"port": 1, "protocol": "HTTP"}]},
                                                    {"hostname": "api.example.com"}]}}}
    status, patched = patch_status(fakeapi, body)
    assert (status, patched["spec"]["type"], patched["metadata"]["labels"]["seen"]) == (200, "LoadBalancer", "yes")
    # ipMode defaults to VIP for an ip; the ports of an ingress are not validated by a real server
    assert patched["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.10", "ipMode": "VIP", "ports": [{"port": 1, "protocol": "HTTP"}]},
        {"hostname": "api.example.com"}]
    replaced = {**patched, "spec": {**patched["spec"], "type": "NodePort"}, "status": {"loadBalancer": {}}}
    status, put = call(fakeapi, f"{SHOP}/api/status", method="PUT", body=replaced)
    assert (status, put["spec"]["type"], put["status"]) == (200, "LoadBalancer", {"loadBalancer": {}})
    # A status sent to the main resource is the server's: kept on update, dropped on create.
    body = {"metadata": {"annotations": {"a": "b"}}, "status": {"loadBalancer": {"ingress": INGRESS}}}
    status, main = call(fakeapi, f"{SHOP}/api", method="PATCH", content_type=MERGE, body=body)
    assert (status, main["metadata"]["annotations"], main["status"]) == (200, {"a": "b"}, {"loadBalancer": {}})
    status, created = call(fakeapi, SHOP, method="POST", body={
        "metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": INGRESS}}})
    assert (status, created["status"]) == (201, {"loadBalancer": {}})


def test_status_owners_move_between_field_managers(fakeapi):
    shop_api(fakeapi)
    status, first = call(fakeapi, f"{SHOP}/api/status?fieldManager=metallb", method="PATCH", content_type=MERGE,
                         body={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}})
    assert status == 200
    assert fakeapi.field_owners("services", "api", "shop", "status.loadBalancer.ingress") == ["metallb"]
    status, second = call(fakeapi, f"{SHOP}/api/status?fieldManager=portico", method="PATCH", content_type=MERGE,
                          body={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}}})
    entries = fakeapi.managed_fields("services", "api", "shop")
    assert [(e["manager"], e.get("subresource")) for e in entries] == [("kubectl-create", None), ("portico", "status")]
    assert entries[1]["fieldsV1"] == {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}
    assert fakeapi.field_owners("services", "api", "shop", "status.loadBalancer.ingress") == ["portico"]
    assert fakeapi.field_owners("services", "api", "shop", "spec.type") == ["kubectl-create"]
    # The same status again changes nothing: no new resourceVersion, managedFields as they were.
    status, same = call(fakeapi, f"{SHOP}/api/status?fieldManager=other", method="PATCH", content_type=MERGE,
                        body={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20", "ipMode": "VIP"}]}}})
    assert (status, same) == (200, second)
    # Removing the ingress leaves an empty loadBalancer, and nobody owns it any more.
    status, removed = call(fakeapi, f"{SHOP}/api/status?fieldManager=portico", method="PATCH", content_type=MERGE,
                           body={"status": {"loadBalancer": {"ingress": None}}})
    assert (status, removed["status"]) == (200, {"loadBalancer": {}})
    assert [e["manager"] for e in removed["metadata"]["managedFields"]] == ["kubectl-create"]
    assert int(removed["metadata"]["resourceVersion"]) == int(second["metadata"]["resourceVersion"]) + 1
    # Without fieldManager, the User-Agent's program is the manager.
    patch_status(fakeapi, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.30"}]}}},
                 user_agent="OpenAPI-Generator/37.0.2/python")
    assert fakeapi.field_owners("services", "api", "shop", "status.loadBalancer.ingress") == ["OpenAPI-Generator"]
    assert first["metadata"]["uid"] == removed["metadata"]["uid"]


def test_status_changes_reach_watches(fakeapi_certdir):
    with FakeKubeAPI(fakeapi_certdir, watch=True) as api:
        rv = shop_api(api)["metadata"]["resourceVersion"]
        patch_status(api, {"status": {"loadBalancer": {"ingress": INGRESS}}})
        patch_status(api, {"status": {"loadBalancer": {"ingress": INGRESS}}})
        patch_status(api, {"metadata": {"annotations": {"x": "y"}}})
        conn = _connection(api)
        conn.request("GET", f"{SHOP}?watch=1&resourceVersion={rv}&timeoutSeconds=1",
                     headers={"Authorization": f"Bearer {api.token}"})
        events = [json.loads(line) for line in conn.getresponse().read().splitlines()]
        conn.close()
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED"]
    assert events[0]["object"]["status"]["loadBalancer"]["ingress"] == INGRESS
    assert events[1]["object"]["metadata"]["annotations"] == {"x": "y"}


def test_python_client_patches_the_status(fakeapi):
    from kubernetes import client
    shop_api(fakeapi)
    with core_api(fakeapi) as api_client:
        core = client.CoreV1Api(api_client)
        patched = core.patch_namespaced_service_status("api", "shop",
                                                       {"status": {"loadBalancer": {"ingress": INGRESS}}})
        assert [(i.ip, i.ip_mode) for i in patched.status.load_balancer.ingress] == [("192.0.2.10", "Proxy")]
        request = api_client.param_serialize(
            method="PATCH", resource_path="/api/v1/namespaces/{namespace}/services/{name}/status",
            path_params={"namespace": "shop", "name": "api"}, query_params=[("fieldManager", "portico-sync")],
            header_params={"Accept": "application/json", "Content-Type": MERGE},
            body={"metadata": {"resourceVersion": patched.metadata.resource_version},
                  "status": {"loadBalancer": {"ingress": None}}}, auth_settings=["BearerToken"])
        response = api_client.call_api(*request)
        assert (response.status, json.loads(response.read())["status"]) == (200, {"loadBalancer": {}})
    patches = [(r.headers.get("Content-Type"), r.status) for r in fakeapi.requests if r.method == "PATCH"]
    assert patches == [("application/strategic-merge-patch+json", 200), (MERGE, 200)]
    entries = fakeapi.managed_fields("services", "api", "shop")
    assert [(e["manager"], e.get("subresource")) for e in entries] == [("kubectl-create", None)]


def test_forbid_and_allow_rules(fakeapi):
    shop_api(fakeapi)
    ingress = {"status": {"loadBalancer": {"ingress": INGRESS}}}
    fakeapi.add_token("t", "bob")
    fakeapi.forbid("t", "services/status")
    assert (call(fakeapi, f"{SHOP}/api/status", token="t")[0], call(fakeapi, f"{SHOP}/api", token="t")[0]) == (403, 200)
    fakeapi.allow("t", "services/status")
    fakeapi.forbid("t", ["patch", "services/status"], ("create", "events.events.k8s.io"))
    assert call(fakeapi, f"{SHOP}/api/status", token="t")[0] == 200
    assert patch_status(fakeapi, ingress, token="t")[0] == 403
    status, body = call(fakeapi, "/apis/events.k8s.io/v1/namespaces/shop/events", method="POST", token="t",
                        body={"metadata": {"name": "x"}})
    assert (status, body["message"], body["details"]) == (403, (
        'events.events.k8s.io is forbidden: User "bob" cannot create resource "events" in API group '
        '"events.k8s.io" in the namespace "shop"'), {"group": "events.k8s.io", "kind": "events"})
    assert call(fakeapi, "/apis/events.k8s.io/v1/namespaces/shop/events", token="t")[0] == 200
    fakeapi.allow("t", ("patch", "services/status"))
    fakeapi.forbid("t", "services")
    assert patch_status(fakeapi, ingress, token="t")[0] == 403
    fakeapi.allow("t", "services")
    assert patch_status(fakeapi, ingress, token="t")[0] == 200


@needs_kubectl
def test_kubectl_shows_the_external_ip_after_a_status_patch(fakeapi, fakeapi_kubeconfig, tmp_path):
    cluster_ip = shop_api(fakeapi)["spec"]["clusterIP"]
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "svc", "-n", "shop")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0][:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    assert rows[1][:5] == ["api", "LoadBalancer", cluster_ip, "<pending>", "443:30443/TCP,9000:30900/TCP"]
    result = kubectl(fakeapi_kubeconfig, tmp_path, "patch", "svc", "api", "-n", "shop", "--subresource=status",
                     "--type=merge", "-p", json.dumps({"status": {"loadBalancer": {"ingress": INGRESS}}}))
    assert result.returncode == 0, result.stderr
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "svc", "api", "-n", "shop")
    assert result.stdout.splitlines()[1].split()[:4] == ["api", "LoadBalancer", cluster_ip, "192.0.2.10"]
    assert fakeapi.field_owners("services", "api", "shop", "status.loadBalancer.ingress") == ["kubectl-patch"]
    assert call(fakeapi, EVENTS, method="POST", body=event_body())[0] == 201
    result = kubectl(fakeapi_kubeconfig, tmp_path, "get", "events", "-n", "shop")
    assert result.returncode == 0, result.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines()]
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [row[1:] for row in rows[1:]] == [["Normal", "AddressAssigned", "service/api",
                                              "assigned 192.0.2.10 from pool default"]]


# ---------------------------------------------------------------- Service spec rules and patches

def test_load_balancer_class_rules(fakeapi):
    shop_api(fakeapi, loadBalancerClass="portico.io/haproxy")
    cases = [
        ({"spec": {"loadBalancerClass": "other.io/lb"}},
         'spec.loadBalancerClass: Invalid value: "other.io/lb": may not change once set'),
        ({"spec": {"loadBalancerClass": None}},
         'spec.loadBalancerClass: Invalid value: "null": may not change once set'),
        ({"spec": {"type": "ClusterIP", "loadBalancerClass": "other.io/lb"}},
         "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ]
    for patch, message in cases:
        status, body = call(fakeapi, f"{SHOP}/api", method="PATCH", body=patch, content_type=MERGE)
        assert (status, body["message"]) == (422, f'Service "api" is invalid: {message}'), patch
    spec = {"type": "LoadBalancer", "loadBalancerClass": "portico.io/", "ports": [{"port": 80}]}
    status, body = call(fakeapi, SHOP, method="POST", body={"metadata": {"name": "bad"}, "spec": spec})
    assert (status, body["details"]["causes"][0]["field"]) == (422, "spec.loadBalancerClass")
    assert body["details"]["causes"][0]["message"].startswith(
        'Invalid value: "portico.io/": name part must be non-empty')
    status, body = call(fakeapi, SHOP, method="POST", body={
        "metadata": {"name": "bad"}, "spec": {"loadBalancerClass": "portico.io/haproxy", "ports": [{"port": 80}]}})
    assert body["message"] == ("Service \"bad\" is invalid: spec.loadBalancerClass: Forbidden: may only be used when "
                               "`type` is 'LoadBalancer'")


LABEL_RULE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


@pytest.mark.parametrize("ports,message", [
    ([{"name": "Http", "port": 80}], f'spec.ports[0].name: Invalid value: "Http": {LABEL_RULE}'),
    ([{"name": "http.x", "port": 80}], 'spec.ports[0].name: Invalid value: "http.x": must not contain dots'),
    ([{"name": "p" * 64, "port": 80}],
     f'spec.ports[0].name: Invalid value: "{"p" * 64}": must be no more than 63 characters'),
    ([{"name": "http", "port": 80}, {"port": 81}], "spec.ports[1].name: Required value"),
    ([{"name": "http", "port": 80}, {"name": "http", "port": 81}],
     'spec.ports[1].name: Duplicate value: "http"'),
])
def test_service_port_names_are_validated_as_the_real_server_does(fakeapi, ports, message):
    body = {"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": ports}}
    status, answer = call(fakeapi, SHOP, method="POST", body=body)
    assert (status, answer["message"]) == (422, f'Service "web" is invalid: {message}')
    assert [c["field"] for c in answer["details"]["causes"]] == [message.split(":")[0]]
    with pytest.raises(FakeAPIError):
        fakeapi.add_service(objects.service("web", "shop", type="NodePort", ports=[objects.service_port(80, name="A")]))


def test_service_port_names_the_real_server_accepts(fakeapi):
    # kubectl create service nodeport x --tcp=8200:8080 names its port "8200-8080"; any DNS-1123 label goes
    ports = [{"name": "8200-8080", "port": 8200, "targetPort": 8080}, {"name": "http-metrics-api", "port": 9100},
             {"name": "9", "port": 9}, {"name": "a--b", "port": 10}, {"name": "p" * 63, "port": 11}]
    body = {"metadata": {"name": "x"}, "spec": {"type": "NodePort", "ports": ports}}
    status, answer = call(fakeapi, SHOP, method="POST", body=body)
    assert status == 201, answer
    assert [p["name"] for p in answer["spec"]["ports"]] == [p["name"] for p in ports]


def test_a_type_change_drops_what_depended_on_the_type(fakeapi):
    shop_api(fakeapi, loadBalancerClass="portico.io/haproxy", loadBalancerIP="192.0.2.99")
    fakeapi.patch_status("services", "api", "shop", {"status": {"loadBalancer": {"ingress": INGRESS}}},
                         manager="portico")
    status, body = call(fakeapi, f"{SHOP}/api", method="PATCH", body={"spec": {"type": "NodePort"}}, content_type=MERGE,
                        user_agent="kubectl-patch/v1.36")
    assert status == 200, body
    spec = body["spec"]
    assert (spec["type"], body["status"]) == ("NodePort", {"loadBalancer": {}})
    for dropped in ("loadBalancerClass", "allocateLoadBalancerNodePorts", "healthCheckNodePort"):
        assert dropped not in spec, dropped
    assert ([p["nodePort"] for p in spec["ports"]], spec["externalTrafficPolicy"]) == ([30443, 30900], "Local")
    assert spec["loadBalancerIP"] == "192.0.2.99"
    assert fakeapi.field_owners("services", "api", "shop", "spec.type") == ["kubectl-patch"]
    status, body = call(fakeapi, f"{SHOP}/api", method="PATCH", body={"spec": {"type": "ClusterIP"}},
                        content_type=MERGE)
    assert (status, [p.get("nodePort") for p in body["spec"]["ports"]]) == (200, [None, None])
    assert "externalTrafficPolicy" not in body["spec"]


def test_patch_types_of_the_main_resource(fakeapi):
    shop_api(fakeapi)
    path = f"{SHOP}/api"
    status, body = call(fakeapi, path, method="PATCH", content_type="application/strategic-merge-patch+json",
                        body={"spec": {"ports": [{"port": 9000, "name": "prom"}]}})
    assert status == 200 and [(p["port"], p["name"], p["nodePort"]) for p in body["spec"]["ports"]] == [
        (443, "https", 30443), (9000, "prom", 30900)]
    status, body = call(fakeapi, path, method="PATCH", content_type="application/json-patch+json", body=[
        {"op": "add", "path": "/metadata/annotations", "value": {"portico.io/balance": "leastconn"}},
        {"op": "test", "path": "/spec/type", "value": "LoadBalancer"}])
    assert (status, body["metadata"]["annotations"]) == (200, {"portico.io/balance": "leastconn"})
    status, body = call(fakeapi, path, method="PATCH", content_type="application/json-patch+json",
                        body=[{"op": "remove", "path": "/spec/nope"}])
    assert (status, body["reason"]) == (422, "Invalid")
    status, body = call(fakeapi, path, method="PATCH", content_type="application/apply-patch+yaml", body={})
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    status, body = call(fakeapi, path, method="PATCH", content_type=MERGE, body={"metadata": {"name": "other"}})
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = call(fakeapi, f"{path}/status", method="PATCH", content_type=MERGE,
                        body={"status": {"loadBalancer": {"ingress": "192.0.2.1"}}})
    assert (status, body["message"]) == (400, (
        'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field '
        'LoadBalancerStatus.status.loadBalancer.ingress of type []v1.LoadBalancerIngress'))
    node = fakeapi.add_node(objects.node("n1"))
    precondition = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}}
    status, body = call(fakeapi, "/api/v1/nodes/n1", method="PATCH", content_type=MERGE,
                        body={"spec": {"unschedulable": True}, **precondition})
    assert (status, body["spec"]["unschedulable"]) == (200, True)
    status, body = call(fakeapi, "/api/v1/nodes/n1", method="PATCH", content_type=MERGE, body=precondition)
    assert (status, body["reason"]) == (409, "Conflict")


# ---------------------------------------------------------------- events.k8s.io/v1

EVENTS = "/apis/events.k8s.io/v1/namespaces/shop/events"


def event_body(**changes):
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"generateName": "api-"},
            "eventTime": "2026-12-01T21:00:00.000000Z", "reportingController": "portico.io/haproxy",
            "reportingInstance": "portico-sync", "action": "AssignAddress", "reason": "AddressAssigned",
            "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": "shop", "name": "api"},
            "note": "assigned 192.0.2.10 from pool default", "type": "Normal"}
    body.update(changes)
    return body


def test_events_answer_like_the_real_server(fakeapi, fakeapi_captures_dir):
    expected = load(fakeapi_captures_dir, "event-create.json")
    status, created = call(fakeapi, EVENTS, method="POST", body=event_body(), user_agent="curl/8.5.0")
    assert status == 201
    assert list(created) == list(expected) and list(created["metadata"]) == list(expected["metadata"])
    assert key_paths(created) == key_paths(expected)
    assert {**created, "metadata": None} == {**expected, "metadata": None}
    assert without_times(created["metadata"]["managedFields"]) == without_times(expected["metadata"]["managedFields"])
    name = created["metadata"]["name"]
    assert re.fullmatch(r"api-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    invalid = load(fakeapi_captures_dir, "error-422-event-invalid.json")
    status, body = call(fakeapi, EVENTS, method="POST", body=event_body(metadata={"generateName": "api."}))
    assert (status, body["details"]["causes"]) == (422, invalid["details"]["causes"])
    generated = body["details"]["name"]
    assert re.fullmatch(r"api\.[bcdfghjklmnpqrstvwxz2456789]{5}", generated)
    assert json.loads(json.dumps(body).replace(generated, "api.4jpml")) == invalid
    assert call(fakeapi, f"{EVENTS}/{name}") == (200, created)
    status, listed = call(fakeapi, EVENTS)
    assert (status, listed["kind"], names(listed["items"])) == (200, "EventList", [name])
    again = event_body(metadata={"name": name})
    status, body = call(fakeapi, EVENTS, method="POST", body=again)
    assert (status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == f'events.events.k8s.io "{name}" already exists'
    assert body["details"] == {"name": name, "group": "events.k8s.io", "kind": "events"}
    assert [e["metadata"]["name"] for e in fakeapi.events("shop", regarding="api", reason="AddressAssigned")] == [name]
    assert fakeapi.events("shop", regarding=("Service", "web")) == []


@pytest.mark.parametrize("changes, message", [
    ({"reportingController": None, "action": "", "type": "Info"},
     "[reportingController: Required value, reportingController: Invalid value: \"\": name part must be non-empty, "
     "reportingController: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or "
     "'.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
     "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'), action: Required value, "
     "type: Invalid value: \"\": has invalid value: Info]"),
    ({"note": "x" * 1025, "reportingInstance": "i" * 129},
     "[reportingInstance: Invalid value: \"\": can have at most 128 characters, "
     "message: Invalid value: \"\": can have at most 1024 characters]"),
    ({"eventTime": None}, "eventTime: Required value"),
    ({"regarding": {"kind": "Node", "name": "worker-1"}},
     'involvedObject.namespace: Invalid value: "": does not match event.namespace'),
    ({"deprecatedCount": 3, "deprecatedSource": {"component": "x"}},
     '[count: Invalid value: "": needs to be unset, source: Invalid value: "": needs to be unset]'),
])
def test_events_are_validated_as_the_real_server_does(fakeapi, changes, message):
    status, body = call(fakeapi, EVENTS, method="POST", body=event_body(metadata={"name": "api.1"}, **changes))
    assert (status, body["reason"], body["details"]["kind"]) == (422, "Invalid", "Event")
    assert body["message"] == f'Event "api.1" is invalid: {message}'


def test_event_times_are_micro_times(fakeapi):
    status, body = call(fakeapi, EVENTS, method="POST", body=event_body(eventTime="2026-12-01T21:00:00Z"))
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == ('Event in version "v1" cannot be handled as a Event: parsing time '
                               '"2026-12-01T21:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as '
                               '".000000"')
    status, body = call(fakeapi, EVENTS, method="POST", body=event_body(eventTime="2026-12-01T22:00:00.5+01:00"))
    assert status == 400
    status, body = call(fakeapi, EVENTS, method="POST", body=event_body(eventTime="2026-12-01T22:00:00.500000+01:00"))
    assert (status, body["eventTime"]) == (201, "2026-12-01T21:00:00.500000Z")


def test_python_client_creates_events(fakeapi):
    import datetime
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    when = datetime.datetime(2026, 12, 1, 21, 0, 0, 250000, tzinfo=datetime.timezone.utc)
    event = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="api.portico-1", namespace="shop"), event_time=when,
        reporting_controller="portico.io/haproxy", reporting_instance="portico-sync", action="AssignAddress",
        reason="AddressAssigned", note="assigned 192.0.2.10", type="Normal",
        regarding=client.V1ObjectReference(api_version="v1", kind="Service", namespace="shop", name="api"))
    with core_api(fakeapi) as api_client:
        events = client.EventsV1Api(api_client)
        created = events.create_namespaced_event("shop", event)
        assert (created.metadata.name, created.event_time, created.deprecated_source) == (
            "api.portico-1", when, client.V1EventSource())
        assert [e.reason for e in events.list_namespaced_event("shop").items] == ["AddressAssigned"]
        with pytest.raises(ApiException) as caught:
            events.create_namespaced_event("shop", event)
        assert caught.value.status == 409
        event.metadata.name, event.reporting_controller = "api.portico-2", "not a name!"
        with pytest.raises(ApiException) as caught:
            events.create_namespaced_event("shop", event)
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["details"]["causes"][0]["field"] == "reportingController"
    assert fakeapi.managed_fields("events", "api.portico-1", "shop")[0]["manager"] == "OpenAPI-Generator"


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
