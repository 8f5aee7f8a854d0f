"""PATCH bodies applied as kube-apiserver applies them to built-in resources.

- `application/merge-patch+json`: RFC 7386 (null deletes a key, lists are replaced whole);
- `application/strategic-merge-patch+json`: a merge patch whose lists with a patchMergeKey in the
  Go types (Service spec.ports by `port`, status.conditions by `type`, ownerReferences by `uid`,
  finalizers as a set) are merged by key, with the `$patch`, `$retainKeys`,
  `$deleteFromPrimitiveList/` and `$setElementOrder/` directives; other lists are replaced;
- `application/json-patch+json`: RFC 6902 operations.

Server-side apply (`application/apply-patch+yaml`) is not implemented: `PatchError` 415 says so.
Any other Content-Type is refused with the real server's 415.
"""

import copy
import json

JSON_PATCH = "application/json-patch+json"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
ACCEPTED = (JSON_PATCH, MERGE, STRATEGIC, APPLY)

MERGE_KEYS = {
    ("spec", "ports"): "port",
    ("status", "conditions"): "type",
    ("status", "addresses"): "type",
    ("metadata", "ownerReferences"): "uid",
}
MERGED_SETS = frozenset({("metadata", "finalizers")})


class PatchError(Exception):
    """A patch the server refuses: code, reason and message of its Status."""

    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def patch_type(content_type):
    """The patch type of a Content-Type header (parameters dropped), or 415 as the real server answers."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in ACCEPTED:
        raise PatchError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                      "accepted media types include: " + ", ".join(ACCEPTED))
    if media == APPLY:
        raise PatchError(415, "UnsupportedMediaType", "the fake API server does not implement server-side apply "
                                                      f"({APPLY}); send a merge patch or an update")
    return media


def apply(media, target, body):
    """target (a dict, not changed) patched with the raw body of a media-type patch."""
    try:
        patch = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as err:
        raise PatchError(400, "BadRequest", f"error decoding patch: {err}") from None
    if media == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchError(400, "BadRequest", "Invalid JSON Patch" if media == MERGE else
                         "json: cannot unmarshal array into Go value of type map[string]interface {}")
    if media == MERGE:
        return merge_patch(target, patch)
    return strategic_merge(target, patch)


# ---------------------------------------------------------------- RFC 7386

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# ---------------------------------------------------------------- strategic merge patch

def strategic_merge(target, patch, names=()):
    """A strategic merge patch of target; None when the patch says `$patch: delete`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field) or [] if v not in value]
            continue
        _patch_key(out, key, value, names + (key,))
    if isinstance(patch.get("$retainKeys"), list):
        out = {k: v for k, v in out.items() if k in patch["$retainKeys"]}
    return out


def _patch_key(out, key, value, names):
    if value is None:
        out.pop(key, None)
    elif isinstance(value, list) and names in MERGE_KEYS:
        out[key] = _merge_list(out.get(key) or [], value, MERGE_KEYS[names], names)
    elif isinstance(value, list) and names in MERGED_SETS:
        out[key] = list(out.get(key) or []) + [v for v in value if v not in (out.get(key) or [])]
    elif isinstance(value, dict):
        merged = strategic_merge(out.get(key), value, names)
        if merged is None:
            out.pop(key, None)
        else:
            out[key] = merged
    else:
        out[key] = copy.deepcopy(value)


def _merge_list(current, patch, key, names):
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            out.append(copy.deepcopy(item))
            continue
        index = next((i for i, old in enumerate(out) if isinstance(old, dict) and old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            out = [old for old in out if not (isinstance(old, dict) and old.get(key) == item.get(key))]
        elif index is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            out[index] = strategic_merge(out[index], item, names)
    return out


# ---------------------------------------------------------------- RFC 6902

def json_patch(target, operations):
    if not isinstance(operations, list):
        kind = "object" if isinstance(operations, dict) else "value"
        raise PatchError(400, "BadRequest", f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for operation in operations:
        doc = _operation(doc, operation)
    return doc


def _operation(doc, operation):
    op, path = operation.get("op"), operation.get("path", "")
    if op == "test":
        if _get(doc, path) != operation.get("value"):
            raise _failed(f"testing value {path} failed: test failed")
        return doc
    if op in ("move", "copy"):
        value = copy.deepcopy(_get(doc, operation.get("from", "")))
        if op == "move":
            doc = _remove(doc, operation.get("from", ""))
        return _add(doc, path, value)
    if op == "remove":
        return _remove(doc, path)
    if op == "replace":
        _get(doc, path)
        return _add(_remove(doc, path), path, copy.deepcopy(operation.get("value")))
    if op == "add":
        return _add(doc, path, copy.deepcopy(operation.get("value")))
    raise _failed(f"Unexpected kind: {op}")


def _failed(message):
    return PatchError(422, "Invalid", message)


def _tokens(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise _failed(f"JSON pointer must be empty or start with a \"/\": {path}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _parent(doc, path):
    tokens = _tokens(path)
    if not tokens:
        return None, None
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, path)
    return node, tokens[-1]


def _child(node, token, path):
    try:
        return node[int(token)] if isinstance(node, list) else node[token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _failed(f"doc is missing path: \"{path}\": missing value") from None


def _get(doc, path):
    node = doc
    for token in _tokens(path):
        node = _child(node, token, path)
    return node


def _add(doc, path, value):
    parent, last = _parent(doc, path)
    if parent is None:
        return value
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise _failed(f"add operation does not apply: doc is missing path: \"{path}\": missing value")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise _failed(f"add operation does not apply: doc is missing path: \"{path}\": missing value")
    return doc


def _remove(doc, path):
    parent, last = _parent(doc, path)
    try:
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise _failed(f"remove operation does not apply: doc is missing path: \"{path}\": missing value") from None
    return doc
