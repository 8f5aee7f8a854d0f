"""A fake kube-apiserver over HTTPS, faithful to the protocol the collection relies on.

It serves nodes, services, endpoints, namespaces, secrets (core v1), endpointslices
(discovery.k8s.io/v1) and events (events.k8s.io/v1) with:

- bearer-token authentication (401 for a bad token, 403 for anonymous requests and for what a
  token is forbidden), with the real server's Status bodies. `forbid(token, *rules)` and
  `allow(token, *rules)` take rules: a resource ("nodes"; it covers its subresources), a
  subresource ("services/status"), "*" (everything), or (verb, resource) for one verb, e.g.
  ("patch", "services/status") or ("create", "events"); resources may be group-qualified
  ("events.events.k8s.io");
- discovery (/version, /api, /apis, /api/v1 with services/status, /apis/<group>[/v1]);
- lists with labelSelector, fieldSelector, limit and continue tokens encoded like etcd3
  storage's, each page read from the snapshot of the first (an MVCC history is kept),
  remainingItemCount, and 410 Expired once the snapshot has been compacted;
- get, create (POST, with generateName), update (PUT), patch (merge, strategic merge and JSON
  patch; 415 for other types, server-side apply included) and delete, with the server-side
  defaults and allocations of Services; watch answers 405 unless the server is made with
  `watch=True` (see watch.py: event streams, bookmarks, 410 Expired, dropping watches);
- the `status` subresource of Services (GET, PUT, PATCH): only status (and metadata) changes
  take effect, `metadata.resourceVersion` is a precondition (409), status.loadBalancer is
  validated as the real server does (422), a write that changes nothing keeps the
  resourceVersion (no watch event);
- what the registry does to a Service: on create the status is dropped, on update through
  the main resource it is kept, and a type change drops the fields that depended on the old
  type when left unchanged (clusterIP, nodePorts, healthCheckNodePort,
  allocateLoadBalancerNodePorts, loadBalancerClass, externalTrafficPolicy) and clears
  status.loadBalancer unless the type is LoadBalancer (dropTypeDependentFields); the rules on
  port names (a DNS-1123 label such as "8200-8080", required on a multi-port Service, unique),
  type, loadBalancerClass (a qualified name, only on a LoadBalancer, immutable while one) and
  allocateLoadBalancerNodePorts give 422 (validation.py);
- metadata.managedFields kept for every write made over HTTP as the real server keeps them for
  Update operations (fields.py): the manager is the `fieldManager` parameter, else the
  User-Agent up to its first "/" (the kubernetes Python client's "OpenAPI-Generator/37.0.2/python"
  gives "OpenAPI-Generator", curl's "curl"); writes through /status are recorded with
  `subresource: status`; the writer takes over the fields it changed from other managers;
- Events validated as ValidateEventCreate for events.k8s.io/v1 (422 with every cause), eventTime
  parsed as a MicroTime (exactly six fractional digits, or 400), stored with the fields a real
  server adds (deprecatedSource, deprecatedFirstTimestamp, deprecatedLastTimestamp);
- HTTP writes that change nothing keep the stored object and its resourceVersion, as etcd3
  storage does; the Python object API (create, update, apply) always writes, and may set status;
- `Accept: ...;as=Table` answered with a meta.k8s.io/v1 Table so kubectl prints as usual,
  any other Accept (protobuf included) with JSON;
- fault injection per path (status and body, delay, truncated body, dropped connection).

Use `FakeKubeAPI` in tests (a context manager), or run
`python -m tests.fakeapi.server --state list.json --port 8443 --token T --certdir DIR`.
Test helpers beyond get/list/create/update/delete: `patch()` and `patch_status()` (as the HTTP
PATCH would, with a manager), `managed_fields()`, `field_owners()` (the managers owning a field
such as "status.loadBalancer.ingress") and `events()` (the Events stored, by namespace, regarded
object or reason).
"""

import argparse
import base64
import binascii
import copy
import dataclasses
import datetime
import ipaddress
import json
import pathlib
import posixpath
import random
import re
import signal
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import fields as _fields
from . import objects
from . import patches as _patches
from . import validation as _validation
from . import watch as _watch

DEFAULT_TOKEN = "fakeapi-token"
DEFAULT_USER = "system:serviceaccount:portico:lb-reader"
ANONYMOUS = "system:anonymous"
SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
# system:public-info-viewer lets anonymous users read these, and nothing else.
PUBLIC_PATHS = frozenset({"/version", "/version/", "/healthz", "/livez", "/readyz"})

VERSION_INFO = {
    "major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
    "minCompatibilityMajor": "1", "minCompatibilityMinor": "35", "gitVersion": "v1.36.2",
    "gitCommit": "0f5a6f1e4c3b2a1908f7e6d5c4b3a2918f7e6d5c", "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z", "goVersion": "go1.27.3", "compiler": "gc",
    "platform": "linux/amd64",
}

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class Resource:
    """One served resource and its discovery entry."""

    name: str
    singular: str
    kind: str
    namespaced: bool
    group: str = ""
    version: str = "v1"
    verbs: tuple = ALL_VERBS
    short_names: tuple = ()
    categories: tuple = ()
    storage_hash: str = ""
    field_labels: tuple = ()
    subresources: tuple = ()

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self):
        return f"{self.kind}List"

    @property
    def qualified(self):
        """The group-qualified resource name Status messages use (e.g. endpointslices.discovery.k8s.io)."""
        return f"{self.name}.{self.group}" if self.group else self.name

    def discovery(self):
        entry = {"name": self.name, "singularName": self.singular, "namespaced": self.namespaced,
                 "kind": self.kind, "verbs": list(self.verbs)}
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        if self.storage_hash:
            entry["storageVersionHash"] = self.storage_hash
        return entry

    def subresource_discovery(self, subresource):
        return {"name": f"{self.name}/{subresource}", "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"]}


RESOURCES = (
    Resource("endpoints", "endpoints", "Endpoints", True, short_names=("ep",),
             storage_hash="fWeeMqaN/OA="),
    Resource("namespaces", "namespace", "Namespace", False,
             verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
             short_names=("ns",), storage_hash="Q3oi5N2YM8M=", field_labels=("status.phase",)),
    Resource("nodes", "node", "Node", False, short_names=("no",), storage_hash="XwShjMxG9Fs=",
             field_labels=("spec.unschedulable",)),
    Resource("services", "service", "Service", True, short_names=("svc",), categories=("all",),
             storage_hash="0/CO1lhkEBI=", field_labels=("spec.clusterIP", "spec.type"), subresources=("status",)),
    Resource("secrets", "secret", "Secret", True, storage_hash="S6u1pOWzb84=", field_labels=("type",)),
    Resource("endpointslices", "endpointslice", "EndpointSlice", True, group="discovery.k8s.io",
             field_labels=("addressType",)),
    Resource("events", "event", "Event", True, group="events.k8s.io", short_names=("ev",),
             storage_hash="r2yiGXH7wu8="),
)
BY_NAME = {r.name: r for r in RESOURCES}
BY_PATH = {(r.group, r.version, r.name): r for r in RESOURCES}
# In the order /apis lists them on a real server.
GROUP_VERSIONS = {"events.k8s.io": "v1", "discovery.k8s.io": "v1"}
# Resources whose status a write through the main resource cannot set (GetResetFields), as served here.
STATUS_RESET = {"services"}
# The real alphabet of generated name suffixes (utilrand), and their length.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def find_resource(name):
    """The Resource for a plural, singular, short name or kind (case-insensitive)."""
    wanted = name.lower()
    for res in RESOURCES:
        if wanted in (res.name, res.singular, res.kind.lower(), *res.short_names):
            return res
    raise KeyError(f"the fake API server does not serve {name!r}")


# ---------------------------------------------------------------- Status bodies

class FakeAPIError(Exception):
    """A request failed the way kube-apiserver fails it; .status is the Status body."""

    def __init__(self, status):
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self):
        return self.status["code"]

    @property
    def reason(self):
        return self.status.get("reason", "")


def status_body(code, reason, message, details=None, metadata=None):
    """A metav1.Status failure, keys in the real server's order."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {}, "status": "Failure",
            "message": message, "reason": reason}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(name="", group="", kind="", **extra):
    out = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    if kind:
        out["kind"] = kind
    out.update(extra)
    return out


def unauthorized():
    return FakeAPIError(status_body(401, "Unauthorized", "Unauthorized"))


def not_found(res, name):
    return FakeAPIError(status_body(404, "NotFound", f'{res.qualified} "{name}" not found',
                                    _details(name, res.group, res.name)))


def no_such_path():
    return FakeAPIError(status_body(404, "NotFound", "the server could not find the requested resource", {}))


def bad_request(message):
    return FakeAPIError(status_body(400, "BadRequest", message))


def method_not_allowed():
    return FakeAPIError(status_body(405, "MethodNotAllowed",
                                    "the server does not allow this method on the requested resource", {}))


def already_exists(res, name):
    return FakeAPIError(status_body(409, "AlreadyExists", f'{res.qualified} "{name}" already exists',
                                    _details(name, res.group, res.name)))


def conflict(res, name):
    message = (f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; '
               "please apply your changes to the latest version and try again")
    return FakeAPIError(status_body(409, "Conflict", message, _details(name, res.group, res.name)))


def invalid(res, name, field, value, detail):
    return invalid_errors(res, name, [_validation.invalid(field, value, detail)])


def invalid_errors(res, name, errors):
    """422 Invalid for a list of validation.FieldError, every one a cause, as errors.NewInvalid words it.
    The kind is the stored type's: core for Events too (their storage is the core Event's)."""
    details = _details(name, "", res.kind, causes=[e.cause() for e in errors])
    return FakeAPIError(status_body(422, "Invalid", f'{res.kind} "{name}" is invalid: '
                                                    f'{_validation.aggregate(errors)}', details))


def patch_error(err):
    """A Status for a patches.PatchError (415 UnsupportedMediaType carries no details)."""
    details = None if err.code == 415 else {}
    return FakeAPIError(status_body(err.code, err.reason, err.message, details))


def internal_error(message):
    return FakeAPIError(status_body(500, "InternalError", f"Internal error occurred: {message}",
                                    {"causes": [{"message": message}]}))


GENERIC_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                   405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 422: "Invalid",
                   429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                   504: "Timeout"}


def generic_status(code):
    """A plausible Status for an injected error code."""
    reason = GENERIC_REASONS.get(code, "Unknown")
    return status_body(code, reason, f"injected failure: {reason} ({code})", {})


# ---------------------------------------------------------------- selectors

_KEY = r"[A-Za-z0-9_.\-/]+"
_VALUE = r"[A-Za-z0-9_.\-]*"
_EXISTS = re.compile(rf"(!?)\s*({_KEY})")
_EQUALITY = re.compile(rf"({_KEY})\s*(==|!=|=)\s*({_VALUE})")
_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)")
_COMPARE = re.compile(rf"({_KEY})\s*(>|<)\s*(-?\d+)")


def _split_terms(text):
    """Split a selector on the commas that are not inside parentheses."""
    terms, depth, current = [], 0, []
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t.strip() for t in terms]


def _label_requirement(term):
    """One requirement of a label selector as a predicate on a labels dict."""
    if m := _SET.fullmatch(term):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQUALITY.fullmatch(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _COMPARE.fullmatch(term):
        key, op, bound = m.group(1), m.group(2), int(m.group(3))
        return lambda labels: _compare(labels.get(key), op, bound)
    if m := _EXISTS.fullmatch(term):
        negate, key = m.groups()
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    raise bad_request(f"unable to parse requirement: found '{term}', expected: !, in, notin, =, ==, !=, gt, lt")


def _compare(value, op, bound):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return False
    return number > bound if op == ">" else number < bound


def label_selector(text):
    """A predicate on labels for a labelSelector (equality, set, existence, gt/lt; ANDed)."""
    if not text or not text.strip():
        return lambda labels: True
    requirements = [_label_requirement(t) for t in _split_terms(text)]
    return lambda labels: all(req(labels) for req in requirements)


def _field_value(obj, field):
    if field == "metadata.name":
        return obj["metadata"].get("name", "")
    if field == "metadata.namespace":
        return obj["metadata"].get("namespace", "")
    value = obj
    for part in field.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else ("false" if field == "spec.unschedulable" else "")


def field_selector(text, res):
    """A predicate on objects for a fieldSelector over the fields res supports."""
    if not text or not text.strip():
        return lambda obj: True
    allowed = ("metadata.name", "metadata.namespace", *res.field_labels)
    checks = []
    for term in _split_terms(text):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|!=|=)\s*(.*)", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = m.groups()
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        checks.append((field, op == "!=", value))
    return lambda obj: all((_field_value(obj, f) == v) != neg for f, neg, v in checks)


# ---------------------------------------------------------------- continue tokens

def encode_continue(start_key, rv):
    """etcd3 storage's continue token: base64url (no padding) of {"v","rv","start"}."""
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def _go_base64_error(value):
    for index, char in enumerate(value):
        if not (char.isascii() and (char.isalnum() or char in "-_")):
            return f"illegal base64 data at input byte {index}"
    return f"illegal base64 data at input byte {len(value) - len(value) % 4}"


def _go_json_error(data, pos):
    """What Go's encoding/json says about data that fails to parse at pos."""
    text = data.decode("latin-1")
    if pos >= len(text):
        return "unexpected end of JSON input"
    for literal in ("null", "true", "false"):
        if text[pos] == literal[0]:
            for i, expected in enumerate(literal):
                if pos + i >= len(text):
                    return "unexpected end of JSON input"
                if text[pos + i] != expected:
                    return f"invalid character '{text[pos + i]}' in literal {literal} (expecting '{expected}')"
    return f"invalid character '{text[pos]}' looking for beginning of value"


def _unmarshal_token(data):
    try:
        token = json.loads(data)
    except json.JSONDecodeError as err:
        raise ValueError(_go_json_error(data, err.pos)) from None
    except UnicodeDecodeError:
        raise ValueError(_go_json_error(data, 0)) from None
    if not isinstance(token, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(token), "number")
        raise ValueError(f"json: cannot unmarshal {kind} into Go value of type storage.continueToken")
    rv = token.get("rv", 0)
    if isinstance(rv, bool) or not isinstance(rv, int):
        raise ValueError(f"json: cannot unmarshal {json.dumps(rv)} into Go struct field continueToken.rv of type int64")
    return token


def decode_continue(value):
    """(start key relative to the list's prefix, rv) of a continue token, or 400 like DecodeContinue."""
    def invalid_token(detail):
        return bad_request(f"invalid continue token: {detail}")
    if "=" in value or len(value) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9_-]*", value):
        raise invalid_token(f"continue key is not valid: {_go_base64_error(value)}")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        token = _unmarshal_token(data)
    except (binascii.Error, ValueError) as err:
        raise invalid_token(f"continue key is not valid: {err}") from None
    if token.get("v") != "meta.k8s.io/v1":
        raise invalid_token("continue key is not valid: server does not recognize this encoded version "
                            f"{token.get('v', '')}")
    if token.get("rv", 0) == 0:
        raise invalid_token("continue key is not valid: incorrect encoded start resourceVersion "
                            "(version meta.k8s.io/v1)")
    start = token.get("start") or ""
    if not start:
        raise invalid_token("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")
    key = start if start.startswith("/") else "/" + start
    # Go's path.Clean keeps a client from ranging outside the list's key prefix.
    if posixpath.normpath(key).replace("//", "/") != key:
        raise invalid_token(f"continue key is not valid: {start}")
    return key[1:], token["rv"]


def expired_continue(start_key):
    """The 410 the server answers when a continue token's snapshot was compacted."""
    message = ("The provided continue parameter is too old to display a consistent list result. "
               "You can start a new list without the continue parameter, or use the continue token "
               "in this response to retrieve the remainder of the results. Continuing with the "
               "provided token results in an inconsistent list - objects that were created, "
               "modified, or deleted between the time the first chunk was returned and now may "
               "show up in the list.")
    return FakeAPIError(status_body(410, "Expired", message,
                                    metadata={"continue": encode_continue(start_key, -1)}))


# ---------------------------------------------------------------- storage

class Store:
    """An MVCC store like etcd's: every write gets the next revision, old versions stay
    readable until compacted, keys sort as etcd keys do ("namespace/name")."""

    def __init__(self):
        self.lock = threading.RLock()
        self.rv = 0
        self.compacted = 0
        self._versions = {res.name: {} for res in RESOURCES}
        # Notified on every write, so open watches wake up.
        self.changed = threading.Condition(self.lock)

    @staticmethod
    def key(res, namespace, name):
        return f"{namespace}/{name}" if res.namespaced else name

    def reset(self):
        with self.lock:
            self._versions = {res.name: {} for res in RESOURCES}

    def current(self, res, key):
        with self.lock:
            history = self._versions[res.name].get(key)
            return history[-1][1] if history else None

    def write(self, res, key, obj, rv=None):
        """Store obj as the newest version of key, at rv or the next revision."""
        with self.lock:
            self.rv = max(self.rv, rv) if rv else self.rv + 1
            stored = copy.deepcopy(obj)
            stored["metadata"]["resourceVersion"] = str(rv or self.rv)
            self._versions[res.name].setdefault(key, []).append((rv or self.rv, stored))
            self.changed.notify_all()
            return stored

    def remove(self, res, key):
        with self.lock:
            self.rv += 1
            self._versions[res.name][key].append((self.rv, None))
            self.changed.notify_all()
            return self.rv

    def visible(self, res, rv):
        """(key, object) of every object that existed at revision rv, in key order."""
        with self.lock:
            out = []
            for key, history in self._versions[res.name].items():
                obj = _version_at(history, rv)
                if obj is not None:
                    out.append((key, obj))
        return sorted(out, key=lambda item: item[0].encode())

    def compact(self, rv):
        """Forget versions that no read at rv or later can see, as etcd compaction does."""
        with self.lock:
            self.compacted = max(self.compacted, rv)
            for versions in self._versions.values():
                for key in list(versions):
                    versions[key] = _compact_history(versions[key], self.compacted)
                    if not versions[key]:
                        del versions[key]


def _version_at(history, rv):
    found = None
    for version_rv, obj in history:
        if version_rv > rv:
            break
        found = obj
    return found


def _compact_history(history, rv):
    older = [v for v in history if v[0] <= rv]
    newer = [v for v in history if v[0] > rv]
    keep = older[-1:] if older and older[-1][1] is not None else []
    return keep + newer


# ---------------------------------------------------------------- tables (kubectl's default output)

def human_duration(seconds):
    """apimachinery's duration.HumanDuration, as the AGE column shows it."""
    seconds = int(seconds)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours = seconds // 60, seconds // 3600
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj):
    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds())


def _column(name, priority=0, fmt="", description=""):
    return {"name": name, "type": "string", "format": fmt, "description": description or name,
            "priority": priority}


def _node_status(obj):
    states = ["Ready" if c.get("status") == "True" else "NotReady"
              for c in obj.get("status", {}).get("conditions", []) if c.get("type") == "Ready"]
    states = states or ["Unknown"]
    if obj.get("spec", {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(obj):
    labels = obj["metadata"].get("labels", {})
    roles = {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(r for r in roles if r)) or "<none>"


def _node_address(obj, kind):
    for address in obj.get("status", {}).get("addresses", []):
        if address.get("type") == kind:
            return address.get("address")
    return "<none>"


def _node_cells(obj):
    info = obj.get("status", {}).get("nodeInfo", {})
    return [obj["metadata"]["name"], _node_status(obj), _node_roles(obj), _age(obj),
            info.get("kubeletVersion", ""), _node_address(obj, "InternalIP"),
            _node_address(obj, "ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _service_external(spec, status):
    if spec.get("type") == "ExternalName":
        return spec.get("externalName", "<none>")
    addresses = [i.get("ip") or i.get("hostname") for i in status.get("loadBalancer", {}).get("ingress", [])]
    addresses += spec.get("externalIPs", [])
    if addresses:
        return ",".join(addresses)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def _service_ports(spec):
    ports = [f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
             else f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", [])]
    return ",".join(ports) or "<none>"


def _service_cells(obj):
    spec, status = obj.get("spec", {}), obj.get("status", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec.get("selector", {}).items())) or "<none>"
    return [obj["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            _service_external(spec, status), _service_ports(spec), _age(obj), selector]


def _limited(values, most=3):
    if not values:
        return "<unset>"
    shown = ",".join(values[:most])
    return shown + (f" + {len(values) - most} more..." if len(values) > most else "")


def _endpointslice_cells(obj):
    ports = [str(p["port"]) for p in obj.get("ports") or [] if p.get("port") is not None]
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses", [])]
    return [obj["metadata"]["name"], obj.get("addressType", ""), _limited(ports), _limited(addresses), _age(obj)]


def _endpoints_cells(obj):
    pairs = [f"{a.get('ip')}:{p.get('port')}" for s in obj.get("subsets") or []
             for a in s.get("addresses", []) for p in s.get("ports", [])]
    return [obj["metadata"]["name"], _limited(pairs) if pairs else "<none>", _age(obj)]


def _secret_cells(obj):
    return [obj["metadata"]["name"], obj.get("type", "Opaque"), len(obj.get("data") or {}), _age(obj)]


def _namespace_cells(obj):
    return [obj["metadata"]["name"], obj.get("status", {}).get("phase", "Active"), _age(obj)]


def _since(stamp):
    """HumanDuration since a Time or MicroTime; "<unknown>" for none."""
    if not stamp:
        return "<unknown>"
    when = datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())


def _event_cells(obj):
    """printEvent's wide row: the server prints an events.k8s.io Event as the core Event it stores."""
    first = _since(obj.get("deprecatedFirstTimestamp") or obj.get("eventTime"))
    last = _since(obj.get("deprecatedLastTimestamp")) if obj.get("deprecatedLastTimestamp") else first
    count = obj.get("deprecatedCount") or 1
    if obj.get("series"):
        last, count = _since(obj["series"].get("lastObservedTime")), obj["series"].get("count", count)
    regarding = obj.get("regarding") or {}
    kind = (regarding.get("kind") or "").lower()
    target = f"{kind}/{regarding['name']}" if regarding.get("name") else kind
    source = obj.get("deprecatedSource") or {}
    component = source.get("component") or obj.get("reportingController") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    shown = f"{component}, {instance}" if instance else component
    return [last, obj.get("type", ""), obj.get("reason", ""), target, regarding.get("fieldPath", ""), shown,
            (obj.get("note") or "").strip(), first, count, obj["metadata"]["name"]]


NAME_COLUMN = _column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE_COLUMN = _column("Age", description="CreationTimestamp is a timestamp representing the server "
                                        "time when this object was created.")
TABLES = {
    "nodes": ([NAME_COLUMN, _column("Status"), _column("Roles"), AGE_COLUMN, _column("Version"),
               _column("Internal-IP", 1), _column("External-IP", 1), _column("OS-Image", 1),
               _column("Kernel-Version", 1), _column("Container-Runtime", 1)], _node_cells),
    "services": ([NAME_COLUMN, _column("Type"), _column("Cluster-IP"), _column("External-IP"),
                  _column("Port(s)"), AGE_COLUMN, _column("Selector", 1)], _service_cells),
    "endpointslices": ([NAME_COLUMN, _column("AddressType"), _column("Ports"), _column("Endpoints"),
                        AGE_COLUMN], _endpointslice_cells),
    "endpoints": ([NAME_COLUMN, _column("Endpoints"), AGE_COLUMN], _endpoints_cells),
    "namespaces": ([NAME_COLUMN, _column("Status"), AGE_COLUMN], _namespace_cells),
    "secrets": ([NAME_COLUMN, _column("Type"), dict(_column("Data"), type="integer"), AGE_COLUMN], _secret_cells),
    "events": ([_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
                _column("Subobject", 1), _column("Source", 1), _column("Message"), _column("First Seen", 1),
                dict(_column("Count", 1), type="integer"), _column("Name", 1)], _event_cells),
}


def _row_object(res, obj, include):
    if include == "None":
        return None
    if include == "Object":
        return with_type(res, obj)
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(res, items, list_meta, include="PartialObjectMetadata"):
    """A meta.k8s.io/v1 Table of items, like the server's printers produce for kubectl."""
    columns, cells = TABLES[res.name]
    rows = []
    for obj in items:
        row = {"cells": cells(obj)}
        embedded = _row_object(res, obj, include)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}


def wants_table(accept):
    """Whether the client prefers a Table (kubectl's human-readable output asks so)."""
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in (accept or "").split(","))


def with_type(res, obj):
    """A stored object as a single-object response carries it: kind and apiVersion first."""
    return _ordered(res, {"kind": res.kind, "apiVersion": res.api_version, **obj})


# ---------------------------------------------------------------- request parsing

HTTP_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
              "DELETE": "delete"}


@dataclasses.dataclass
class RequestInfo:
    """What the authorizer sees of a request, parsed like apiserver's RequestInfoFactory."""

    path: str
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""


def _is_true(values):
    return bool(values) and values[-1] in ("1", "t", "T", "true", "TRUE", "True")


def request_info(method, path, query):
    parts = [p for p in path.split("/") if p]
    info = RequestInfo(path=path, verb=method.lower())
    if len(parts) >= 3 and parts[0] == "api":
        info.version, rest = parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        info.group, info.version, rest = parts[1], parts[2], parts[3:]
    else:
        return info
    info.is_resource, info.verb = True, HTTP_VERBS.get(method, method.lower())
    if rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    info.resource = rest[0]
    info.name = rest[1] if len(rest) > 1 else ""
    info.subresource = rest[2] if len(rest) > 2 else ""
    if not info.name and info.verb == "get":
        info.verb = "watch" if _is_true(query.get("watch")) else "list"
    elif not info.name and info.verb == "delete":
        info.verb = "deletecollection"
    return info


def forbidden(user, info):
    """403 with the message and details RBAC's authorizer gives."""
    if not info.is_resource:
        return FakeAPIError(status_body(403, "Forbidden",
                                        f'forbidden: User "{user}" cannot {info.verb} path "{info.path}"', {}))
    resource = info.resource + (f"/{info.subresource}" if info.subresource else "")
    scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    reason = f'User "{user}" cannot {info.verb} resource "{resource}" in API group "{info.group}" {scope}'
    qualified = info.resource + (f".{info.group}" if info.group else "")
    subject = f'{qualified} "{info.name}"' if info.name else qualified
    return FakeAPIError(status_body(403, "Forbidden", f"{subject} is forbidden: {reason}",
                                    _details(info.name, info.group, info.resource)))


@dataclasses.dataclass
class Request:
    """One request as the server received it, for tests to inspect."""

    method: str
    path: str
    query: dict
    user: str
    accept: str
    headers: dict
    token: str = None
    status: int = None
    # with Impersonate-User: the account that sent it (user is the one impersonated), and the groups
    impersonator: str = None
    groups: tuple = ()


@dataclasses.dataclass
class Fault:
    """A scripted misbehaviour for requests to one path.

    status/body/headers replace the answer (body: dict → JSON, str/bytes sent as is,
    None → a Status for status); delay sleeps first; truncate sends only that many
    bytes of the body (headers announce it whole) and closes; drop closes the
    connection without answering. times limits how many requests it applies to, and
    when(request) narrows it further (e.g. only requests with a continue token).
    """

    path: str
    method: str = None
    status: int = None
    body: object = None
    headers: dict = None
    delay: float = 0.0
    truncate: int = None
    drop: bool = False
    times: int = None
    when: object = None
    hits: int = 0

    def matches(self, request):
        if request.path != self.path or (self.method and self.method.upper() != request.method):
            return False
        return self.when is None or bool(self.when(request))

    def response(self):
        body = generic_status(self.status) if self.body is None else self.body
        return self.status, body, dict(self.headers or {})


# ---------------------------------------------------------------- HTTP plumbing

def encode_json(body):
    """Compact JSON with a trailing newline, as the Go server writes it."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; Nagle would hold the body back 40 ms.
    disable_nagle_algorithm = True
    # Idle keep-alive connections give up after this, so handler threads end.
    timeout = 30

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, *args):
        """Quiet: tests read self.server.api.requests instead."""

    def send_response(self, code, message=None):
        """Like the Go server: a Date header, no Server header."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        api = self.server.api
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        body = self._read_body()
        request, fault = api._receive(self.command, url.path, query, self.headers)
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.drop:
            self.close_connection = True
            return
        if fault and fault.status is not None:
            code, payload, headers = fault.response()
        else:
            code, payload, headers = api._answer(request, body)
        request.status = code
        self._send(code, payload, headers, fault.truncate if fault else None)

    def _send(self, code, payload, headers, truncate):
        if isinstance(payload, _watch.WatchStream):
            return payload.serve(self)
        if isinstance(payload, (dict, list)):
            data, ctype = encode_json(payload), "application/json"
        else:
            data = payload.encode() if isinstance(payload, str) else bytes(payload)
            ctype = "text/plain; charset=utf-8"
        self.send_response(code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", headers.pop("Content-Type", ctype))
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data if truncate is None else data[:truncate])
        if truncate is not None:
            self.wfile.flush()
            self.close_connection = True


class _TLSServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose connections do their TLS handshake in their own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api, context):
        self.api = api
        self.context = context
        self.connections = set()
        self.connections_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self):
        """Bind without HTTPServer's reverse DNS lookup, which can stall without a resolver."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        # A client that never completes the handshake must not pin this thread.
        request.settimeout(_Handler.timeout)
        try:
            with self.context.wrap_socket(request, server_side=True) as tls:
                with self.connections_lock:
                    self.connections.add(tls)
                try:
                    self.RequestHandlerClass(tls, client_address, self)
                finally:
                    with self.connections_lock:
                        self.connections.discard(tls)
        except (ssl.SSLError, OSError):
            pass

    def handle_error(self, request, client_address):
        """Clients that hang up mid-response are no concern of the tests."""

    def close_connections(self):
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---------------------------------------------------------------- service defaults

def _default_service(spec):
    """Fill in what the API server defaults on a Service."""
    stype = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if stype == "ExternalName":
        return
    for port in spec.get("ports", []):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if spec.get("clusterIPs") and "ipFamilies" not in spec and spec["clusterIPs"][0] != "None":
        spec["ipFamilies"] = [f"IPv{ipaddress.ip_address(ip).version}" for ip in spec["clusterIPs"]]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack" if len(spec["ipFamilies"]) == 1 else "PreferDualStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")


def _carry_allocations(spec, old_spec):
    """On update, keep the allocations the client left out, as the real server does."""
    if old_spec.get("type") == "ExternalName" or spec.get("type", "ClusterIP") == "ExternalName":
        return
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"], spec["clusterIPs"] = old_spec["clusterIP"], list(old_spec.get("clusterIPs", []))
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports", [])}
    for port in spec.get("ports", []):
        old = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
        if old and "nodePort" not in port and spec.get("type") in ("NodePort", "LoadBalancer"):
            port["nodePort"] = old
    if "healthCheckNodePort" not in spec and old_spec.get("healthCheckNodePort") and _needs_health_check(spec):
        spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _needs_health_check(spec):
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _externally_accessible(spec):
    if spec.get("type") in NODE_PORT_TYPES:
        return True
    return spec.get("type", "ClusterIP") == "ClusterIP" and bool(spec.get("externalIPs"))


def _node_ports(spec):
    return {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}


def _drop_type_dependent_fields(obj, old):
    """dropTypeDependentFields: on update, what the new type has no use for and the client left as
    it was is dropped; status.loadBalancer is cleared unless the Service is a LoadBalancer."""
    spec, old_spec = obj["spec"], old.get("spec", {})
    stype, old_type = spec.get("type", "ClusterIP"), old_spec.get("type", "ClusterIP")

    def same(name):
        return spec.get(name) == old_spec.get(name)

    if old_type != "ExternalName" and stype == "ExternalName":
        if same("clusterIP") and same("clusterIPs"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for name in ("ipFamilies", "ipFamilyPolicy"):
            if same(name):
                spec.pop(name, None)
    if old_type in NODE_PORT_TYPES and stype not in NODE_PORT_TYPES and _node_ports(spec) <= _node_ports(old_spec):
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    if _needs_health_check(old_spec) and not _needs_health_check(spec) and same("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if old_type == "LoadBalancer" and stype != "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is not None and old_spec.get("allocateLoadBalancerNodePorts") \
                is not None and same("allocateLoadBalancerNodePorts"):
            spec.pop("allocateLoadBalancerNodePorts")
        if same("loadBalancerClass"):
            spec.pop("loadBalancerClass", None)
    if _externally_accessible(old_spec) and not _externally_accessible(spec) and same("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)
    if stype != "LoadBalancer":
        obj.setdefault("status", {})["loadBalancer"] = {}


INGRESS_ORDER = ("ip", "hostname", "ipMode", "ports")
PORT_STATUS_ORDER = ("port", "protocol", "error")


def _keys_in(value, order):
    out = {k: value[k] for k in order if k in value}
    out.update({k: v for k, v in value.items() if k not in out})
    return out


def _service_status(obj):
    """A Service's status as the typed object has it: loadBalancer always there, no empty ingress,
    ipMode defaulted to VIP for an ip on a LoadBalancer, keys in Go's order."""
    status = obj.get("status") or {}
    if not isinstance(status, dict):
        raise _undecodable("Service", "Service.status", status, "v1.ServiceStatus")
    if not isinstance(status.get("loadBalancer") or {}, dict):
        raise _undecodable("Service", "ServiceStatus.status.loadBalancer", status["loadBalancer"],
                           "v1.LoadBalancerStatus")
    lb = dict(status.get("loadBalancer") or {})
    ingress = lb.pop("ingress", None) or []
    if not isinstance(ingress, list) or not all(isinstance(i, dict) for i in ingress):
        raise _undecodable("Service", "LoadBalancerStatus.status.loadBalancer.ingress", ingress,
                           "[]v1.LoadBalancerIngress")
    entries = []
    for item in ingress:
        item = dict(item)
        if item.get("ip") and item.get("ipMode") is None and (obj.get("spec") or {}).get("type") == "LoadBalancer":
            item["ipMode"] = "VIP"
        if isinstance(item.get("ports"), list):
            item["ports"] = [_keys_in(p, PORT_STATUS_ORDER) if isinstance(p, dict) else p for p in item["ports"]]
        entries.append(_keys_in({k: v for k, v in item.items() if v is not None}, INGRESS_ORDER))
    if entries:
        lb = {"ingress": entries, **lb}
    out = {"loadBalancer": lb}
    out.update({k: v for k, v in status.items() if k != "loadBalancer" and v is not None})
    return out


def _undecodable(kind, field, value, go_type):
    """400 as the decoder refuses a value of the wrong JSON type (field: Go's Struct.json.path)."""
    found = {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(value), "number")
    return bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal {found} '
                       f'into Go struct field {field} of type {go_type}')


# Metadata a write through /status cannot change (BeforeUpdate and the strategies restore them).
STATUS_KEPT_METADATA = ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "managedFields")


def _status_update(new, old):
    """The object a status update stores: new's status and metadata, old's spec (and the rest of
    old's top-level fields), server-set metadata kept."""
    obj = copy.deepcopy(old)
    obj["status"] = copy.deepcopy(new.get("status"))
    meta = {k: v for k, v in copy.deepcopy(new.get("metadata") or {}).items() if k not in STATUS_KEPT_METADATA}
    meta.update({k: copy.deepcopy(old["metadata"][k]) for k in STATUS_KEPT_METADATA if k in old["metadata"]})
    meta["resourceVersion"] = old["metadata"]["resourceVersion"]
    obj["metadata"] = meta
    return obj


def _decoded(res, obj):
    """obj as a created object is decoded: with the scheme's Service defaults, before any allocation."""
    out = copy.deepcopy(obj)
    if res.name == "services":
        _default_service(out.setdefault("spec", {}))
    return out


def _unchanged(new, old):
    """Whether a write would store what is stored (etcd3 storage then writes nothing)."""
    def comparable(obj):
        out = copy.deepcopy(obj)
        out["metadata"].pop("resourceVersion", None)
        return out
    return comparable(new) == comparable(old)


# ---------------------------------------------------------------- events

EVENT_ORDER = ("kind", "apiVersion", "metadata", "eventTime", "series", "reportingController", "reportingInstance",
               "action", "reason", "regarding", "related", "note", "type", "deprecatedSource",
               "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount")
REFERENCE_ORDER = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
MICRO_TIME_LAYOUT = (("2006", r"\d{4}"), ("-", "-"), ("01", r"\d{2}"), ("-", "-"), ("02", r"\d{2}"), ("T", "T"),
                     ("15", r"\d{2}"), (":", ":"), ("04", r"\d{2}"), (":", ":"), ("05", r"\d{2}"),
                     (".000000", r"\.\d{6}"), ("Z07:00", r"Z|[+-]\d{2}:\d{2}"))


def micro_time(value, kind="Event"):
    """A metav1.MicroTime as the server stores it (UTC, six fractional digits); 400 where Go's
    time.Parse(RFC3339Micro) fails (it wants exactly six fractional digits)."""
    if value is None:
        return None

    def refused(detail):
        return bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {detail}')

    if not isinstance(value, str):
        found = {dict: "object", list: "array", bool: "bool"}.get(type(value), "number")
        raise refused(f"json: cannot unmarshal {found} into Go value of type string")
    rest = value
    for layout, pattern in MICRO_TIME_LAYOUT:
        m = re.match(pattern, rest)
        if not m:
            raise refused(f'parsing time {json.dumps(value)} as "2006-01-02T15:04:05.000000Z07:00": '
                          f'cannot parse {json.dumps(rest)} as "{layout}"')
        rest = rest[m.end():]
    if rest:
        raise refused(f"parsing time {json.dumps(value)}: extra text: {json.dumps(rest)}")
    try:
        stamp = datetime.datetime.strptime(value.replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        raise refused(f"parsing time {json.dumps(value)}: value out of range") from None
    return stamp.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prepare_event(res, obj, old):
    """The fields a real server adds to an events.k8s.io/v1 Event, its times parsed; create validated."""
    obj["eventTime"] = micro_time(obj.get("eventTime"))
    if isinstance(obj.get("series"), dict) and obj["series"].get("lastObservedTime") is not None:
        obj["series"]["lastObservedTime"] = micro_time(obj["series"]["lastObservedTime"])
    for name in ("regarding", "related"):
        if isinstance(obj.get(name), dict):
            obj[name] = _keys_in(obj[name], REFERENCE_ORDER)
    obj.setdefault("regarding", {})
    obj.setdefault("deprecatedSource", {})
    obj.setdefault("deprecatedFirstTimestamp", None)
    obj.setdefault("deprecatedLastTimestamp", None)
    if old is None:
        errors = _validation.event_create(obj, obj["metadata"].get("namespace", ""))
        if errors:
            raise invalid_errors(res, obj["metadata"].get("name", ""), errors)


def _ordered(res, obj):
    """obj with keys in the real server's order (an Event's differ from the other kinds')."""
    return objects.ordered(obj, EVENT_ORDER if res.name == "events" else objects.TOP_LEVEL_ORDER)


# ---------------------------------------------------------------- the server

@dataclasses.dataclass
class _Identity:
    user: str
    forbidden: set
    impersonate: bool = False


class FakeKubeAPI:
    """A fake kube-apiserver on 127.0.0.1 over HTTPS, run in a background thread.

    certdir holds (or receives) ca.pem and server.pem; a temporary directory is used
    when it is None. token is accepted as user; add_token() registers more.
    """

    def __init__(self, certdir=None, *, token=DEFAULT_TOKEN, user=DEFAULT_USER, host="127.0.0.1", port=0,
                 watch=False, bookmark_interval=1.0):
        self._tempdir = None if certdir else tempfile.TemporaryDirectory(prefix="fakeapi-")
        self.certdir = pathlib.Path(certdir or self._tempdir.name)
        self.host, self._port = host, port
        self.token, self.user = token, user
        self.store = Store()
        self._tokens = {token: _Identity(user, set())}
        self._users = {}
        self._faults, self._requests = [], []
        # Unexpected exceptions raised while answering; a test can assert it stays empty.
        self.errors = []
        self._meta_lock = threading.Lock()
        self.serve_watches = watch
        self.watches = _watch.WatchHub(bookmark_interval)
        self._httpd = self._thread = None
        self._ensure_certs()
        self._create_system_namespaces()

    # ------------------------------------------------------------ lifecycle

    def start(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(self.certdir / "server.pem")
        self._httpd = _TLSServer((self.host, self._port), self, context)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fakeapi-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        # A restart comes back on the same port, so kubeconfigs written before stay valid.
        self._port = self.port
        self._httpd = self._thread = None

    def restart(self, downtime=0.0):
        """Stop (open watches and connections are cut), wait downtime seconds, start on the same port."""
        self.stop()
        time.sleep(downtime)
        return self.start()

    def drop_watches(self):
        """Cut the connection of every open watch; returns how many there were."""
        return self.watches.drop()

    def close(self):
        """Stop, and remove the temporary certificate directory if one was made."""
        self.stop()
        if self._tempdir:
            self._tempdir.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def port(self):
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_path(self):
        return self.certdir / "ca.pem"

    def _ensure_certs(self):
        """A CA and a server certificate for 127.0.0.1, ::1 and localhost (kept if already there)."""
        if (self.certdir / "ca.pem").exists() and (self.certdir / "server.pem").exists():
            return
        import trustme
        self.certdir.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="fakeapi", organization_unit_name="test CA")
        cert = ca.issue_cert("127.0.0.1", "::1", "localhost", common_name="kube-apiserver")
        ca.cert_pem.write_to_path(str(self.certdir / "ca.pem"))
        cert.private_key_and_cert_chain_pem.write_to_path(str(self.certdir / "server.pem"))

    def write_kubeconfig(self, path=None, *, token=None, context="fakeapi", namespace=None):
        """Write a kubeconfig for this server (token defaults to the main one); returns its path."""
        path = pathlib.Path(path or self.certdir / "kubeconfig")
        ctx = {"cluster": "fakeapi", "user": f"{context}-user"}
        if namespace:
            ctx["namespace"] = namespace
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "fakeapi", "cluster": {"server": self.url,
                                                         "certificate-authority": str(self.ca_path.resolve())}}],
            "users": [{"name": f"{context}-user", "user": {"token": token or self.token}}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
        }
        import yaml
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ------------------------------------------------------------ identities

    def add_token(self, token, user, forbidden=(), impersonate=False):
        """Accept token as user; forbidden lists rules of what it may not do (see forbid);
        impersonate lets it act as other users (Impersonate-User, see add_user)."""
        with self._meta_lock:
            self._tokens[token] = _Identity(user, {_rule(r) for r in forbidden}, impersonate)

    def add_user(self, user, forbidden=()):
        """A user a token with impersonate=True may act as (add_token), refused what the rules say."""
        with self._meta_lock:
            self._users[user] = {_rule(r) for r in forbidden}

    def forbid(self, token, *rules):
        """Refuse token what the rules say (403 as RBAC words it). A rule is a resource ("nodes":
        every verb, its subresources too), a subresource ("services/status": every verb on it),
        "*" (everything), or (verb, resource) for one verb only: ("patch", "services/status"),
        ("create", "events"), ("list", "*"). A resource may be group-qualified
        ("events.events.k8s.io")."""
        with self._meta_lock:
            self._tokens[token].forbidden.update(_rule(r) for r in rules)

    def allow(self, token, *rules):
        """Take back rules given to forbid (the same rules, as written there)."""
        with self._meta_lock:
            self._tokens[token].forbidden.difference_update(_rule(r) for r in rules)

    # ------------------------------------------------------------ faults and the request log

    def fault(self, path, **kwargs):
        """Script a misbehaviour for requests to path; see Fault for the arguments."""
        fault = Fault(path, **kwargs)
        with self._meta_lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self):
        with self._meta_lock:
            self._faults.clear()

    @property
    def requests(self):
        """The requests received so far, oldest first."""
        with self._meta_lock:
            return list(self._requests)

    def clear_requests(self):
        with self._meta_lock:
            self._requests.clear()

    def _receive(self, method, path, query, headers):
        token = _bearer(headers.get("Authorization"))
        with self._meta_lock:
            identity = self._tokens.get(token) if token else None
            user = identity.user if identity else (ANONYMOUS if token is None else None)
            request = Request(method, path, query, user, headers.get("Accept", ""), dict(headers.items()), token)
            acting = headers.get("Impersonate-User")
            if acting is not None and user is not None:
                # every Impersonate-Group header counts, as the real server reads them
                request = dataclasses.replace(request, user=acting, impersonator=user,
                                              groups=tuple(headers.get_all("Impersonate-Group") or ()))
            self._requests.append(request)
            return request, self._take_fault(request)

    def _take_fault(self, request):
        for fault in self._faults:
            if fault.matches(request):
                fault.hits += 1
                if fault.times is not None and fault.hits >= fault.times:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------ HTTP answers

    def _answer(self, request, body):
        """(status code, body, headers) for one request, errors included."""
        try:
            return self._dispatch(request, body)
        except FakeAPIError as err:
            return err.code, err.status, {}
        except Exception as err:  # a bug in the fake must not look like a network failure
            with self._meta_lock:
                self.errors.append(err)
            return 500, internal_error(repr(err)).status, {}

    def _dispatch(self, request, body):
        if request.user is None:
            raise unauthorized()
        info = request_info(request.method, request.path, request.query)
        self._authorize(request, info)
        if not info.is_resource:
            return self._non_resource(request)
        res = self._route(info)
        return self._resource_request(res, info, request, body)

    def _authorize(self, request, info):
        if request.user == ANONYMOUS:
            if info.is_resource or request.path not in PUBLIC_PATHS:
                raise forbidden(ANONYMOUS, info)
            return
        if request.impersonator is not None:
            with self._meta_lock:
                allowed = self._tokens[request.token].impersonate
                denied = set(self._users.get(request.user, ()))
            if not allowed:
                # the impersonation filter runs before the request's own authorization
                raise FakeAPIError(status_body(403, "Forbidden", 'users "%s" is forbidden: User "%s" cannot '
                                               'impersonate resource "users" in API group "" at the cluster scope'
                                               % (request.user, request.impersonator),
                                               _details(request.user, "", "users")))
            if info.is_resource and _denied(denied, info):
                raise forbidden(request.user, info)
            return
        with self._meta_lock:
            denied = set(self._tokens[request.token].forbidden)
        if info.is_resource and _denied(denied, info):
            raise forbidden(request.user, info)

    def _non_resource(self, request):
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, "ok", {}
        documents = {
            "/version": VERSION_INFO,
            "/api": {"kind": "APIVersions", "versions": ["v1"],
                     "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                     "serverAddress": f"{self.host}:{self.port}"}]},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUP_VERSIONS]},
            "/api/v1": {"kind": "APIResourceList", **_resource_list("")},
        }
        for group, version in GROUP_VERSIONS.items():
            documents[f"/apis/{group}"] = {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}
            documents[f"/apis/{group}/{version}"] = {"kind": "APIResourceList", "apiVersion": "v1",
                                                     **_resource_list(group)}
        if path not in documents:
            raise no_such_path()
        return 200, documents[path], {}

    @staticmethod
    def _route(info):
        res = BY_PATH.get((info.group, info.version, info.resource))
        if res is None or (info.subresource and (info.subresource not in res.subresources or not info.name)):
            raise no_such_path()
        if not res.namespaced and info.namespace and (res.name != "namespaces" or info.name != info.namespace):
            raise no_such_path()
        if res.namespaced and not info.namespace and info.name:
            raise no_such_path()
        return res

    def _resource_request(self, res, info, request, body):
        if info.subresource:
            return self._status_request(res, info, request, body)
        if info.verb == "list":
            return self._http_list(res, info, request)
        if info.verb == "get":
            obj = self._get_stored(res, info.name, info.namespace if res.namespaced else None)
            if wants_table(request.accept):
                return 200, table(res, [obj], {"resourceVersion": str(self.store.rv)},
                                  _last(request.query, "includeObject")), {}
            return 200, with_type(res, obj), {}
        if info.verb == "create" and (info.namespace or not res.namespaced):
            return 201, with_type(res, self._write(res, _parse_body(body), info.namespace, "create",
                                                   manager=_manager(request), wire=True)), {}
        if info.verb == "update":
            obj = _named_body(_parse_body(body), info.name)
            return 200, with_type(res, self._write(res, obj, info.namespace, "update", manager=_manager(request),
                                                   wire=True)), {}
        if info.verb == "patch":
            media = _patch_media(request)
            return 200, with_type(res, self._patch(res, info.name, info.namespace, media, body,
                                                   _manager(request), wire=True)), {}
        if info.verb == "delete":
            return 200, self._http_delete(res, info), {}
        if info.verb == "watch" and self.serve_watches:
            labels = label_selector(_last(request.query, "labelSelector"))
            fields = field_selector(_last(request.query, "fieldSelector"), res)
            return 200, _watch.WatchStream(self, res, info, request, labels, fields), {}
        raise method_not_allowed()

    def _status_request(self, res, info, request, body):
        """GET, PUT and PATCH on <resource>/<name>/status; other verbs answer 405."""
        namespace = info.namespace if res.namespaced else None
        if info.verb == "get":
            return 200, with_type(res, self._get_stored(res, info.name, namespace)), {}
        if info.verb == "update":
            obj = _named_body(_parse_body(body), info.name)
            return 200, with_type(res, self._write_status(res, info.name, namespace, lambda current: obj,
                                                          _manager(request))), {}
        if info.verb == "patch":
            media = _patch_media(request)
            return 200, with_type(res, self._write_status(
                res, info.name, namespace, lambda current: _patched(media, res, current, body),
                _manager(request))), {}
        raise method_not_allowed()

    def _http_list(self, res, info, request):
        namespace = info.namespace if res.namespaced else None
        if res.name == "namespaces":
            namespace = None
        items, meta = self.list_page(res.name, namespace, request.query)
        if wants_table(request.accept):
            return 200, table(res, items, meta, _last(request.query, "includeObject")), {}
        return 200, {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta,
                     "items": items}, {}

    def _http_delete(self, res, info):
        namespace = info.namespace if res.namespaced else None
        deleted = self._delete(res, info.name, namespace)
        if res.name == "services":
            return with_type(res, deleted)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": _details(info.name, res.group, res.name, uid=deleted["metadata"].get("uid", ""))}

    # ------------------------------------------------------------ lists

    def list_page(self, resource, namespace=None, query=None):
        """(items, list metadata) for one list request; query is a parse_qs dict."""
        res = find_resource(resource)
        query = query or {}
        limit = _parse_limit(_last(query, "limit"))
        labels = label_selector(_last(query, "labelSelector"))
        fields = field_selector(_last(query, "fieldSelector"), res)
        prefix = f"{namespace}/" if res.namespaced and namespace else ""
        with self.store.lock:
            start, rv = self._list_position(query, prefix)
            entries = [(k, o) for k, o in self.store.visible(res, rv) if k.startswith(prefix) and k >= start]
        selecting = bool(_last(query, "labelSelector") or _last(query, "fieldSelector"))
        return _page(entries, limit, rv, prefix, selecting,
                     lambda obj: labels(obj["metadata"].get("labels", {})) and fields(obj))

    def _list_position(self, query, prefix):
        """(first key, revision) the list reads from: a continue token's, or the start at now."""
        token = _last(query, "continue")
        if not token:
            return prefix, self._list_revision(query)
        if _last(query, "resourceVersion"):
            raise bad_request("specifying resource version is not allowed when using continue")
        start, rv = decode_continue(token)
        if rv == -1:
            return prefix + start, self.store.rv
        if rv < self.store.compacted:
            raise expired_continue(start)
        if rv > self.store.rv:
            raise internal_error("rpc error: code = OutOfRange desc = etcdserver: mvcc: "
                                 "required revision is a future revision")
        return prefix + start, rv

    def _list_revision(self, query):
        wanted = _last(query, "resourceVersion")
        if not wanted or wanted == "0" or _last(query, "resourceVersionMatch") != "Exact":
            return self.store.rv
        if not wanted.isdigit():
            raise bad_request(f'resourceVersion: Invalid value: "{wanted}": must be a positive integer')
        if int(wanted) < self.store.compacted:
            raise FakeAPIError(status_body(410, "Expired", "The resourceVersion for the provided list is too old."))
        return int(wanted)

    # ------------------------------------------------------------ object API

    def create(self, obj, namespace=None, *, manager=None):
        """Create obj (its kind picks the resource) as a POST would; returns the stored object.
        Unlike a POST it may set a status; manager records the write in managedFields."""
        res = find_resource(obj["kind"])
        return with_type(res, self._write(res, obj, namespace, "create", manager=manager))

    def update(self, obj, namespace=None, *, manager=None):
        """Replace obj as a PUT would (409 if its resourceVersion is stale); unlike a PUT it may set
        a status, and it writes even when nothing changes."""
        res = find_resource(obj["kind"])
        return with_type(res, self._write(res, obj, namespace, "update", manager=manager))

    def patch(self, resource, name, namespace, body, *, content_type=_patches.MERGE, manager=None):
        """PATCH an object as over HTTP (body: the patch as JSON data; a status in it is ignored for
        Services); manager records it in managedFields. Returns the stored object."""
        res = find_resource(resource)
        media = self._media(content_type)
        return with_type(res, self._patch(res, name, namespace, media, json.dumps(body).encode(), manager))

    def patch_status(self, resource, name, namespace, body, *, content_type=_patches.MERGE, manager=None):
        """PATCH <resource>/<name>/status as over HTTP: only status (and metadata) change, a
        metadata.resourceVersion in body is a precondition, Service status is validated. manager
        records it in managedFields (subresource status), as another controller's write would be."""
        res = find_resource(resource)
        media = self._media(content_type)
        raw = json.dumps(body).encode()
        return with_type(res, self._write_status(res, name, namespace if res.namespaced else None,
                                                 lambda current: _patched(media, res, current, raw), manager))

    @staticmethod
    def _media(content_type):
        try:
            return _patches.patch_type(content_type)
        except _patches.PatchError as err:
            raise patch_error(err) from None

    def managed_fields(self, resource, name, namespace=None):
        """The managedFields entries of an object, as stored."""
        return copy.deepcopy(self.get(resource, name, namespace)["metadata"].get("managedFields", []))

    def field_owners(self, resource, name, namespace, field):
        """The managers owning field ("status.loadBalancer.ingress", "spec.type", or a tuple of
        FieldsV1 elements such as ("f:metadata", "f:labels", "f:app")) in an object's managedFields."""
        return _fields.owners(self.managed_fields(resource, name, namespace), field)

    def events(self, namespace=None, *, regarding=None, reason=None):
        """The events.k8s.io/v1 Events stored (in a namespace, if given), oldest first; regarding: the
        name of the object they are about (or (kind, name)); reason: only those with that reason."""
        found = []
        for event in self.list("events", namespace):
            about = event.get("regarding") or {}
            if isinstance(regarding, tuple) and (about.get("kind"), about.get("name")) != regarding:
                continue
            if isinstance(regarding, str) and about.get("name") != regarding:
                continue
            if reason is not None and event.get("reason") != reason:
                continue
            found.append(with_type(BY_NAME["events"], event))
        return sorted(found, key=lambda e: (e.get("eventTime") or "", e["metadata"]["creationTimestamp"],
                                            int(e["metadata"]["resourceVersion"])))

    def apply(self, obj, namespace=None):
        """Create obj, or replace it if it exists (whatever its resourceVersion)."""
        res = find_resource(obj["kind"])
        meta = obj.get("metadata", {})
        with self.store.lock:
            key = self.store.key(res, meta.get("namespace") or namespace or "default", meta["name"])
            exists = self.store.current(res, key) is not None
            unconditional = copy.deepcopy(obj)
            unconditional["metadata"].pop("resourceVersion", None)
            return with_type(res, self._write(res, unconditional, namespace, "update" if exists else "create"))

    def delete(self, resource, name, namespace=None):
        """Delete an object; returns it as it was (with the deletion's resourceVersion)."""
        res = find_resource(resource)
        return with_type(res, self._delete(res, name, namespace))

    def get(self, resource, name, namespace=None):
        res = find_resource(resource)
        return copy.deepcopy(with_type(res, self._get_stored(res, name, namespace)))

    def list(self, resource, namespace=None):
        """Every object of a resource (in a namespace, if given), in etcd key order."""
        res = find_resource(resource)
        return copy.deepcopy(self.list_page(res.name, namespace)[0])

    def add_node(self, obj):
        return self.create({**obj, "kind": "Node"})

    def replace_node(self, obj):
        return self.update({**obj, "kind": "Node"})

    def delete_node(self, name):
        return self.delete("nodes", name)

    def add_service(self, obj):
        return self.create({**obj, "kind": "Service"})

    def replace_service(self, obj):
        return self.update({**obj, "kind": "Service"})

    def delete_service(self, namespace, name):
        return self.delete("services", name, namespace)

    def add_endpointslice(self, obj):
        return self.create({**obj, "kind": "EndpointSlice"})

    def replace_endpointslice(self, obj):
        return self.update({**obj, "kind": "EndpointSlice"})

    def delete_endpointslice(self, namespace, name):
        return self.delete("endpointslices", name, namespace)

    @property
    def resource_version(self):
        """The current revision: bumped by every write."""
        return self.store.rv

    @property
    def compacted_revision(self):
        return self.store.compacted

    def compact(self, rv=None):
        """Compact history up to rv (default: now); continue tokens older than rv get 410."""
        self.store.compact(self.store.rv if rv is None else rv)

    def load_list(self, source):
        """Replace every object with those of a List such as `kubectl get
        nodes,services,endpointslices -A -o json` prints (a dict, a path to its JSON, or a
        list of objects). Objects are kept as given, uid, timestamps and resourceVersions
        included (those without one get the next); older continue tokens expire."""
        doc = _list_document(source)
        default_kind = doc.get("kind", "List")[:-len("List")] or ""
        with self.store.lock:
            self.store.reset()
            later = []
            for item in doc.get("items", []):
                res = find_resource(item.get("kind") or default_kind or "List items need a kind")
                rv = str(item.get("metadata", {}).get("resourceVersion", ""))
                if rv.isdigit() and int(rv) > 0:
                    self._restore(res, item, int(rv))
                else:
                    later.append((res, item))
            for res, item in later:
                self._restore(res, item, None)
            self._create_system_namespaces()
            self._ensure_namespaces({o["metadata"]["namespace"] for r in RESOURCES if r.namespaced
                                     for unused, o in self.store.visible(r, self.store.rv)})
            self.store.compact(self.store.rv)

    def dump_list(self, resources=("nodes", "services", "endpointslices")):
        """The objects as a v1 List, like `kubectl get nodes,services,endpointslices -A -o json`."""
        items = [self.get(r, o["metadata"]["name"], o["metadata"].get("namespace"))
                 for r in resources for o in self.list(r)]
        return objects.cluster_list(items)

    # ------------------------------------------------------------ writes

    def _restore(self, res, item, rv):
        obj = _strip_type(item)
        meta = obj["metadata"]
        # Hand-written lists may leave out what a real server always has.
        meta.setdefault("uid", objects.new_uid())
        meta.setdefault("creationTimestamp", objects.now())
        if res.namespaced:
            meta.setdefault("namespace", "default")
        key = self.store.key(res, meta.get("namespace", ""), meta["name"])
        self.store.write(res, key, _ordered(res, obj), rv)

    def _get_stored(self, res, name, namespace):
        obj = self.store.current(res, self.store.key(res, namespace or "", name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def _write(self, res, obj, namespace, verb, manager=None, wire=False):
        """Create or replace obj as a POST or PUT would. wire: it came over HTTP (a Service's status
        is then the server's, and a write that changes nothing is not made); manager: record the
        write in managedFields under that name ("" is a manager too; None leaves them as given)."""
        obj = _strip_type(obj, res)
        meta = obj["metadata"]
        if res.namespaced:
            if namespace and meta.get("namespace", namespace) != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
            meta["namespace"] = meta.get("namespace") or namespace or "default"
        else:
            meta.pop("namespace", None)
        with self.store.lock:
            if verb == "create" and not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(res, meta)
            if not meta.get("name"):
                raise invalid_errors(res, "", [_validation.required("metadata.name",
                                                                    "name or generateName is required")])
            key = self.store.key(res, meta.get("namespace", ""), meta["name"])
            old = self.store.current(res, key)
            self._check_write(res, meta, old, verb)
            sent = meta.get("managedFields")
            # The field manager sees a created object as decoded (defaults, no allocations yet).
            decoded = _decoded(res, obj) if old is None else None
            obj = self._prepare(res, obj, old, wire)
            if manager is not None:
                self._record(res, obj, old, manager, sent, decoded)
            if wire and old is not None and _unchanged(obj, old):
                return copy.deepcopy(old)
            if res.namespaced:
                self._ensure_namespaces({meta["namespace"]})
            return copy.deepcopy(self.store.write(res, key, obj))

    def _generate_name(self, res, meta):
        """generateName and five random characters (the base cut to 58), tried again on a clash."""
        base = meta["generateName"][:58]
        for unused in range(8):
            name = base + "".join(random.choice(NAME_ALPHABET) for unused in range(5))
            if self.store.current(res, self.store.key(res, meta.get("namespace", ""), name)) is None:
                return name
        raise already_exists(res, name)

    def _check_write(self, res, meta, old, verb):
        if verb == "create" and old is not None:
            raise already_exists(res, meta["name"])
        if verb == "update" and old is None:
            raise not_found(res, meta["name"])
        wanted = meta.get("resourceVersion")
        if verb == "update" and wanted and wanted != old["metadata"]["resourceVersion"]:
            raise conflict(res, meta["name"])

    def _prepare(self, res, obj, old, wire=False):
        """Server-side fields: uid, creationTimestamp, generation, what the registry does to a
        Service (defaults, allocations, status) or an Event; then validation (422)."""
        meta = obj["metadata"]
        if old is not None:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            meta.setdefault("managedFields", old["metadata"].get("managedFields"))
            if meta["managedFields"] is None:
                del meta["managedFields"]
        meta.setdefault("uid", objects.new_uid())
        meta.setdefault("creationTimestamp", objects.now())
        if res.name == "endpointslices":
            meta["generation"] = old["metadata"].get("generation", 0) + 1 if old else meta.get("generation", 1)
        if res.name == "services":
            self._prepare_service(res, obj, old, wire)
        elif old is not None and "status" not in obj and "status" in old:
            obj["status"] = copy.deepcopy(old["status"])
        if res.name == "events":
            _prepare_event(res, obj, old)
        return _ordered(res, obj)

    def _record(self, res, obj, old, manager, sent, decoded=None):
        """The write in managedFields: the request's entries if it has some, else the stored ones;
        decoded: the object the manager's fields are read from, if not obj."""
        meta = obj["metadata"]
        if _fields.is_reset(sent):
            base = []
        else:
            base = sent or (old or {}).get("metadata", {}).get("managedFields") or []
        reset = (("f:status",),) if res.name in STATUS_RESET else ()
        entries = _fields.update(base, old, decoded or obj, resource=res.name, manager=manager,
                                 api_version=res.api_version, time=objects.now(), reset=reset)
        if entries:
            meta["managedFields"] = entries
        else:
            meta.pop("managedFields", None)

    def _prepare_service(self, res, obj, old, wire):
        spec = obj.setdefault("spec", {})
        if wire or "status" not in obj:
            # PrepareForCreate drops the status; PrepareForUpdate keeps the stored one.
            obj["status"] = copy.deepcopy(old["status"]) if old is not None else {}
        if old is not None:
            _drop_type_dependent_fields(obj, old)
            _carry_allocations(spec, old.get("spec", {}))
        _default_service(spec)
        obj["status"] = _service_status(obj)
        if spec["type"] != "ExternalName":
            taken = self._taken_node_ports(obj["metadata"])
            self._check_node_ports(res, obj, taken)
            self._allocate(spec, taken)
        errors = _validation.service_spec(obj, old)
        if errors:
            raise invalid_errors(res, obj["metadata"]["name"], errors)

    def _write_status(self, res, name, namespace, make, manager):
        """An update through <resource>/<name>/status: make(current typed object) gives the new object,
        of which only status (and metadata) count; resourceVersion is a precondition."""
        with self.store.lock:
            key = self.store.key(res, namespace or "", name)
            old = self._get_stored(res, name, namespace)
            new = _strip_type(make(with_type(res, copy.deepcopy(old))), res)
            wanted = new["metadata"].get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            obj = _status_update(new, old)
            if res.name == "services":
                obj["status"] = _service_status(obj)
                errors = _validation.service_status(obj, old)
                if errors:
                    raise invalid_errors(res, name, errors)
            if manager is not None:
                entries = _fields.update(old["metadata"].get("managedFields"), old, obj, resource=res.name,
                                         manager=manager, api_version=res.api_version, time=objects.now(),
                                         subresource="status", reset=(("f:spec",),))
                obj["metadata"].pop("managedFields", None)
                if entries:
                    obj["metadata"]["managedFields"] = entries
            obj = _ordered(res, obj)
            if _unchanged(obj, old):
                return copy.deepcopy(old)
            return copy.deepcopy(self.store.write(res, key, obj))

    def _patch(self, res, name, namespace, media, body, manager, wire=True):
        """A PATCH of the main resource: the patched object goes through the update path."""
        namespace = namespace if res.namespaced else None
        with self.store.lock:
            current = self._get_stored(res, name, namespace)
            patched = _named_body(_patched(media, res, current, body), name)
            return self._write(res, patched, namespace, "update", manager=manager, wire=wire)

    def _taken_node_ports(self, meta):
        taken = set()
        me = (meta.get("namespace"), meta["name"])
        for unused, svc in self.store.visible(BY_NAME["services"], self.store.rv):
            if (svc["metadata"].get("namespace"), svc["metadata"]["name"]) == me:
                continue
            spec = svc.get("spec", {})
            taken.update(p["nodePort"] for p in spec.get("ports", []) if p.get("nodePort"))
            if spec.get("healthCheckNodePort"):
                taken.add(spec["healthCheckNodePort"])
        return taken

    @staticmethod
    def _check_node_ports(res, obj, taken):
        spec = obj["spec"]
        for index, port in enumerate(spec.get("ports", [])):
            if port.get("nodePort") in taken:
                raise invalid(res, obj["metadata"]["name"], f"spec.ports[{index}].nodePort", port["nodePort"],
                              "provided port is already allocated")
        if spec.get("healthCheckNodePort") in taken:
            raise invalid(res, obj["metadata"]["name"], "spec.healthCheckNodePort", spec["healthCheckNodePort"],
                          "provided port is already allocated")

    def _allocate(self, spec, taken):
        if not spec.get("clusterIP"):
            ips = [self._free_cluster_ip(family) for family in spec["ipFamilies"]]
            spec["clusterIP"], spec["clusterIPs"] = ips[0], ips
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        if spec["type"] in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports", []):
                if not port.get("nodePort"):
                    port["nodePort"] = _free_port(taken)
        if spec["type"] == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            if not spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = _free_port(taken)
        _order_spec(spec)

    def _free_cluster_ip(self, family):
        used = {ip for unused, svc in self.store.visible(BY_NAME["services"], self.store.rv)
                for ip in svc.get("spec", {}).get("clusterIPs", [])}
        cidr = objects.SERVICE_CIDR_V4 if family == "IPv4" else objects.SERVICE_CIDR_V6
        # From the top of the range, away from the low addresses tests tend to pick.
        for index in range(cidr.num_addresses - 2, 0, -1):
            if str(cidr[index]) not in used:
                return str(cidr[index])
        raise internal_error("range is full")

    def _delete(self, res, name, namespace):
        with self.store.lock:
            key = self.store.key(res, namespace or "", name)
            old = self.store.current(res, key)
            if old is None:
                raise not_found(res, name)
            rv = self.store.remove(res, key)
        deleted = copy.deepcopy(old)
        deleted["metadata"]["resourceVersion"] = str(rv)
        return deleted

    def _create_system_namespaces(self):
        self._ensure_namespaces(SYSTEM_NAMESPACES)

    def _ensure_namespaces(self, names):
        """Namespaces objects live in are created on first use, as a cluster admin would."""
        res = BY_NAME["namespaces"]
        with self.store.lock:
            for name in sorted(names):
                if self.store.current(res, name) is None:
                    self.store.write(res, name, _namespace(name))


# ---------------------------------------------------------------- small helpers

def _bearer(header):
    """The bearer token of an Authorization header; None when there is no bearer token."""
    if not header:
        return None
    scheme, unused, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _last(query, name):
    values = query.get(name)
    return values[-1] if values else None


def _rule(rule):
    """A forbid/allow rule as stored: a resource string, or a (verb, resource) tuple."""
    if isinstance(rule, (list, tuple)):
        verb, target = rule
        return (verb, target)
    return rule


def _denied(rules, info):
    """Whether any rule covers the request: its resource, resource/subresource, or "*", for its verb."""
    qualified = info.resource + (f".{info.group}" if info.group else "")
    targets = {"*", info.resource, qualified}
    if info.subresource:
        targets |= {f"{info.resource}/{info.subresource}", f"{qualified}/{info.subresource}"}
    for rule in rules:
        verb, target = rule if isinstance(rule, tuple) else ("*", rule)
        if target in targets and verb in ("*", info.verb):
            return True
    return False


def _parse_limit(value):
    if value in (None, ""):
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        raise bad_request(f'limit: Invalid value: "{value}": must be an integer') from None


def _page(entries, limit, rv, prefix, selecting, matches):
    """One page of a list: items, and metadata with continue/remainingItemCount as etcd3 storage sets them."""
    items, meta, last_key = [], {"resourceVersion": str(rv)}, None
    for index, (key, obj) in enumerate(entries):
        if limit and len(items) == limit:
            meta["continue"] = encode_continue(last_key[len(prefix):] + "\x00", rv)
            # With a selector the server cannot know how many of the rest match.
            if not selecting:
                meta["remainingItemCount"] = len(entries) - index
            break
        if matches(obj):
            items.append(obj)
            last_key = key
    return items, meta


def _list_document(source):
    if isinstance(source, (str, pathlib.Path)):
        return json.loads(pathlib.Path(source).read_text())
    if isinstance(source, dict):
        return source
    return {"kind": "List", "items": list(source)}


def _parse_body(body):
    try:
        obj = json.loads(body or b"{}")
    except ValueError as err:
        raise bad_request(f"the request body is not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise bad_request("the request body is not a JSON object")
    return obj


def _header(request, name):
    """A request header by name, whatever its case."""
    wanted = name.lower()
    return next((v for k, v in request.headers.items() if k.lower() == wanted), None)


def _manager(request):
    """The field manager a write is recorded under: fieldManager, else managerOrUserAgent's
    prefixFromUserAgent (up to the first "/", printable characters, at most 128 bytes)."""
    wanted = _last(request.query, "fieldManager")
    if wanted:
        return wanted
    prefix = "".join(c for c in (_header(request, "User-Agent") or "").split("/", 1)[0] if c.isprintable())
    return prefix.encode()[:128].decode(errors="ignore")


def _named_body(obj, name):
    """obj with the URL's name, or 400 if it names another object."""
    if obj.get("metadata", {}).get("name", name) != name:
        raise bad_request(f"the name of the object ({obj['metadata']['name']}) does not match "
                          f"the name on the URL ({name})")
    obj.setdefault("metadata", {})["name"] = name
    return obj


def _patch_media(request):
    try:
        return _patches.patch_type(_header(request, "Content-Type"))
    except _patches.PatchError as err:
        raise patch_error(err) from None


def _patched(media, res, current, body):
    """current (stored, or already typed) patched with body, as the typed object the patch applies to."""
    try:
        patched = _patches.apply(media, with_type(res, current), body)
    except _patches.PatchError as err:
        raise patch_error(err) from None
    if not isinstance(patched, dict):
        raise bad_request(f"the patched object is not a {res.kind}")
    return patched


def _strip_type(obj, res=None):
    """A deep copy of obj as stored: no kind or apiVersion (lists carry those), metadata present."""
    if res is not None and obj.get("kind") not in (None, res.kind):
        raise bad_request(f"the object provided is unrecognized (must be of type {res.kind}): {obj.get('kind')}")
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("kind", "apiVersion")}
    out.setdefault("metadata", {})
    return objects.ordered(out)


def _free_port(taken):
    low, high = objects.NODE_PORT_RANGE
    for port in range(high, low - 1, -1):
        if port not in taken:
            taken.add(port)
            return port
    raise internal_error("range is full")


SERVICE_SPEC_ORDER = ("ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity",
                      "loadBalancerIP", "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
                      "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
                      "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass",
                      "internalTrafficPolicy", "trafficDistribution")


def _order_spec(spec):
    ordered = {k: spec[k] for k in SERVICE_SPEC_ORDER if k in spec}
    ordered.update({k: v for k, v in spec.items() if k not in ordered})
    spec.clear()
    spec.update(ordered)


def _namespace(name):
    meta = {"name": name, "uid": objects.new_uid(), "creationTimestamp": objects.now(),
            "labels": {"kubernetes.io/metadata.name": name}}
    obj = {"metadata": meta, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    meta["managedFields"] = [objects.managed_fields_entry(obj, ["metadata"], manager="kube-apiserver",
                                                          api_version="v1")]
    return obj


def _group(group):
    version = {"groupVersion": f"{group}/{GROUP_VERSIONS[group]}", "version": GROUP_VERSIONS[group]}
    return {"name": group, "versions": [version], "preferredVersion": version}


def _resource_list(group):
    version = GROUP_VERSIONS.get(group, "v1")
    entries = []
    for res in (r for r in RESOURCES if r.group == group):
        entries.append(res.discovery())
        entries += [res.subresource_discovery(sub) for sub in res.subresources]
    return {"groupVersion": f"{group}/{version}" if group else version, "resources": entries}


# ---------------------------------------------------------------- command line

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.fakeapi.server",
                                     description="Serve a fake Kubernetes API over HTTPS until killed.")
    parser.add_argument("--state", help="a v1 List JSON file to serve (default: a small sample cluster)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token to accept")
    parser.add_argument("--watch", action="store_true", help="serve watches (?watch=1) instead of 405")
    parser.add_argument("--certdir", help="where the CA, server certificate and kubeconfig go "
                                          "(kept and reused; default: a temporary directory)")
    args = parser.parse_args(argv)
    api = FakeKubeAPI(args.certdir, token=args.token, host=args.host, port=args.port, watch=args.watch)
    api.load_list(args.state or objects.cluster_list(objects.sample_cluster()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *unused: stop.set())
    with api:
        kubeconfig = api.write_kubeconfig()
        print(api.url, flush=True)
        print(f"CA: {api.ca_path}\nkubeconfig: {kubeconfig}\ntoken: {api.token}", file=sys.stderr, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
