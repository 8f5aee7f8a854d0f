"""metadata.managedFields as kube-apiserver keeps them for Update operations (create, PUT, PATCH).

A field set is a set of paths, each a tuple of FieldsV1 elements: "f:name" (a field), "k:{...}"
(an item of a list keyed by some of its fields), "v:..." (an item of a set). A path is a member
either as a leaf (an atomic value) or as a node: a map or list that the manager made exist
(FieldsV1 marks it "."). Non-pointer structs (spec, status, status.loadBalancer, ...) always
exist in a typed object, so their own presence is never owned, as in the real server.

An Update by a manager (structured-merge-diff's Updater with force): the fields that it added
or changed go to its entry (one per manager, operation, apiVersion and subresource) and leave
every other entry, removed fields leave every entry; an entry left owning nothing is dropped,
and only the writer's entry gets a new time. Reset fields (status on the main resource, spec on
/status) are never owned by a write through that endpoint. Entries are sorted as the server
sorts them (operation, time, manager, apiVersion, subresource).
"""

import json

# Fields the field manager never tracks (stripMetaManager).
STRIPPED_META = frozenset({"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
                           "managedFields", "resourceVersion"})
# Lists keyed by some item fields (listType=map), by field path (field names only).
KEYED = {
    ("spec", "ports"): ("port", "protocol"),
    ("status", "conditions"): ("type",),
    ("status", "addresses"): ("type", "address"),
    ("spec", "taints"): ("key", "effect"),
    ("metadata", "ownerReferences"): ("uid",),
}
SETS = frozenset({("metadata", "finalizers"), ("spec", "podCIDRs"), ("spec", "finalizers")})
ATOMIC_MAPS = frozenset({("spec", "selector"), ("regarding",), ("related",)})
STRUCTS = {
    "services": {("metadata",), ("spec",), ("status",), ("status", "loadBalancer")},
    "events": {("metadata",), ("deprecatedSource",)},
    "nodes": {("metadata",), ("spec",), ("status",), ("status", "daemonEndpoints"),
              ("status", "daemonEndpoints", "kubeletEndpoint"), ("status", "nodeInfo")},
    "namespaces": {("metadata",), ("spec",), ("status",)},
}
NODE = "node"


# ---------------------------------------------------------------- an object's field set

def field_map(obj, resource):
    """{path: value} for every member of obj's field set; nodes map to NODE, leaves to their JSON."""
    out = {}
    _walk_map(obj or {}, (), (), out, STRUCTS.get(resource, {("metadata",)}))
    return out


def _walk_map(value, path, names, out, structs):
    for key, inner in value.items():
        if (not names and key in ("kind", "apiVersion")) or (names == ("metadata",) and key in STRIPPED_META):
            continue
        _walk(inner, path + (f"f:{key}",), names + (key,), out, structs)


def _walk(value, path, names, out, structs):
    if value is None or value == {} or value == []:
        return
    if isinstance(value, dict) and names not in ATOMIC_MAPS:
        if names not in structs:
            out[path] = NODE
        _walk_map(value, path, names, out, structs)
    elif isinstance(value, list) and names in KEYED and all(isinstance(v, dict) for v in value):
        out[path] = NODE
        for item in value:
            item_path = path + (item_key(item, KEYED[names]),)
            out[item_path] = NODE
            _walk_map(item, item_path, names, out, structs)
    elif isinstance(value, list) and names in SETS:
        out[path] = NODE
        for item in value:
            out[path + ("v:" + json.dumps(item, separators=(",", ":")),)] = json.dumps(item)
    else:
        out[path] = json.dumps(value, sort_keys=True)


def item_key(item, keys):
    ident = {k: item[k] for k in keys if k in item}
    return "k:" + json.dumps(ident, separators=(",", ":"), sort_keys=True)


def compare(old, new):
    """(added, modified, removed) paths between two field maps."""
    added = set(new) - set(old)
    removed = set(old) - set(new)
    modified = {p for p in set(new) & set(old) if new[p] != old[p]}
    return added, modified, removed


# ---------------------------------------------------------------- FieldsV1

def to_set(tree, prefix=()):
    """The paths a FieldsV1 tree holds."""
    out = set()
    for key, inner in (tree or {}).items():
        if key == ".":
            out.add(prefix)
        elif inner:
            out |= to_set(inner, prefix + (key,))
        else:
            out.add(prefix + (key,))
    return out


def to_tree(paths):
    """The FieldsV1 tree of a set of paths, elements in structured-merge-diff's order."""
    root = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return _build(root, (), set(paths))


def _build(node, prefix, members):
    out = {".": {}} if node and prefix in members and prefix else {}
    for key in sorted(node, key=_element_order):
        out[key] = _build(node[key], prefix + (key,), members)
    return out


def _element_order(element):
    kind, text = element[:2], element[2:]
    rank = {"f:": 0, "k:": 1, "v:": 2, "i:": 3}.get(kind, 4)
    if kind in ("k:", "v:"):
        try:
            value = json.loads(text)
        except ValueError:
            return rank, (), text
        items = sorted(value.items()) if isinstance(value, dict) else [("", value)]
        return rank, tuple((k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))) for k, v in items), text
    return rank, (), text


def dotted(path):
    """("f:status", "f:loadBalancer") for "status.loadBalancer"; a tuple of elements is kept as is."""
    if isinstance(path, tuple):
        return path
    return tuple(f"f:{part}" for part in path.split("."))


# ---------------------------------------------------------------- Update

def identity(entry):
    return (entry.get("manager", ""), entry.get("operation"), entry.get("apiVersion"), entry.get("subresource", ""))


def entry(manager, api_version, paths, time, subresource=None):
    out = {"manager": manager} if manager else {}
    out.update({"operation": "Update", "apiVersion": api_version, "time": time, "fieldsType": "FieldsV1",
                "fieldsV1": to_tree(paths)})
    if subresource:
        out["subresource"] = subresource
    return out


def update(entries, old, new, *, resource, manager, api_version, time, subresource=None, reset=()):
    """The managedFields after manager's Update of old into new; reset: path prefixes it cannot own."""
    added, modified, removed = compare(field_map(old, resource), field_map(new, resource))
    changed = {p for p in added | modified if not _under(p, reset)}
    removed = {p for p in removed if not _under(p, reset)}
    mine = (manager, "Update", api_version, subresource or "")
    out, found = [], False
    for current in entries or []:
        owned = to_set(current.get("fieldsV1")) - changed - removed
        if identity(current) == mine:
            found = True
            if changed:
                current = {**current, "time": time}
                owned |= changed
        if owned:
            out.append({**current, "fieldsV1": to_tree(owned)})
    if changed and not found:
        out.append(entry(manager, api_version, changed, time, subresource))
    return sort(out)


def _under(path, prefixes):
    return any(path[:len(p)] == p for p in prefixes)


def sort(entries):
    """sortEncodedManagedFields: by operation, time, manager, apiVersion, subresource."""
    return sorted(entries, key=lambda e: (e.get("operation", ""), e.get("time") or "", e.get("manager", ""),
                                          e.get("apiVersion", ""), e.get("subresource", "")))


def owners(entries, path):
    """The managers whose entries own path (a dotted field path or a tuple of elements)."""
    wanted = dotted(path)
    return [e.get("manager", "") for e in entries or [] if wanted in to_set(e.get("fieldsV1"))]


def is_reset(entries):
    """A request's managedFields of one empty entry ([{}]) asks the server to clear them."""
    return isinstance(entries, list) and len(entries) == 1 and entries[0] == {}
