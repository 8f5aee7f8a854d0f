"""Field validation as kube-apiserver words it, for the fields a load balancer controller meets.

`FieldError` renders like apimachinery's field.Error (`spec.type: Unsupported value: "x":
supported values: ...`); `aggregate()` joins them as the Invalid Status message does. The rules
are those of kube-apiserver v1.36 (pkg/apis/core/validation):

- `service_status()`: ValidateServiceStatusUpdate's ValidateLoadBalancerStatus (ingress only on
  a LoadBalancer, `ip` a valid IP, `ipMode` Proxy or VIP and only with `ip`, `hostname` a DNS
  subdomain and not an IP). The ingress' `ports` are not validated there: a real server takes any.
- `service_spec()`: the part of ValidateService/ValidateServiceUpdate about port names (a
  DNS-1123 label, required on a multi-port Service, unique), `type` and the fields that depend
  on it (loadBalancerClass, allocateLoadBalancerNodePorts, nodePort on a ClusterIP,
  loadBalancerSourceRanges). `spec.loadBalancerIP` is not validated by a real server.
- `event_create()`: ValidateEventCreate for events.k8s.io/v1 (the core Event's field names:
  `message` for `note`, `involvedObject` for `regarding`, as the real messages have them).
"""

import dataclasses
import ipaddress
import json
import re

_OMIT = object()
REASONS = {"Required value": "FieldValueRequired", "Invalid value": "FieldValueInvalid",
           "Unsupported value": "FieldValueNotSupported", "Forbidden": "FieldValueForbidden",
           "Duplicate value": "FieldValueDuplicate", "Too long": "FieldValueTooLong"}


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One field.Error: its type ("Invalid value", ...), field path, bad value and detail."""

    type: str
    field: str
    value: object = _OMIT
    detail: str = ""

    @property
    def reason(self):
        return REASONS[self.type]

    @property
    def body(self):
        """ErrorBody(): the type, the bad value as Go prints it, and the detail."""
        text = self.type
        if self.value is not _OMIT and self.type not in ("Required value", "Forbidden", "Too long"):
            text += f": {_go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self):
        return f"{self.field}: {self.body}"

    def cause(self):
        return {"reason": self.reason, "message": self.body, "field": self.field}


def _go_value(value):
    if value is None:
        return '"null"'
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def required(field, detail=""):
    return FieldError("Required value", field, detail=detail)


def invalid(field, value, detail):
    return FieldError("Invalid value", field, value, detail)


def forbidden(field, detail):
    return FieldError("Forbidden", field, detail=detail)


def not_supported(field, value, supported):
    return FieldError("Unsupported value", field, value,
                      "supported values: " + ", ".join(json.dumps(v) for v in supported))


def aggregate(errors):
    """utilerrors.NewAggregate(errs).Error(): one message, or [a, b] with repeats left out."""
    seen = []
    for error in errors:
        if str(error) not in seen:
            seen.append(str(error))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


# ---------------------------------------------------------------- names (k8s.io/apimachinery/pkg/util/validation)

DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + "(\\." + DNS1123_LABEL + ")*"
QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_SUBDOMAIN_MESSAGE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                      "'.', and must start and end with an alphanumeric character")
_QUALIFIED_MESSAGE = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character")


def _regex_error(message, regex, *examples):
    """RegexError, its Go spacing included: (e.g. 'MyName',  or 'my.name',  or '123-abc', regex ...)."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{regex}')"


_LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                  "start and end with an alphanumeric character")


def dns1123_label(value):
    """IsDNS1123Label: the problems of value as an RFC 1123 label (none: valid)."""
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not re.fullmatch(DNS1123_LABEL, value):
        if re.fullmatch(DNS1123_SUBDOMAIN, value):
            errors.append("must not contain dots")
        else:
            errors.append(_regex_error(_LABEL_MESSAGE, DNS1123_LABEL, "my-name", "123-abc"))
    return errors


def dns1123_subdomain(value):
    """IsDNS1123Subdomain: the problems of value as an RFC 1123 subdomain (none: valid)."""
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        errors.append(_regex_error(_SUBDOMAIN_MESSAGE, DNS1123_SUBDOMAIN, "example.com"))
    return errors


def qualified_name(value):
    """IsQualifiedName: an optional DNS subdomain prefix and '/', then a name of at most 63 characters."""
    parts = value.split("/")
    if len(parts) > 2:
        return ["a qualified name " + _regex_error(_QUALIFIED_MESSAGE, QUALIFIED_NAME, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    errors = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += ["prefix part " + m for m in dns1123_subdomain(prefix)]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not re.fullmatch(QUALIFIED_NAME, name):
        errors.append("name part " + _regex_error(_QUALIFIED_MESSAGE, QUALIFIED_NAME, "MyName", "my.name", "123-abc"))
    return errors


def name_is_dns_subdomain(name, prefix):
    """NameIsDNSSubdomain: a generateName may end with '-' (maskTrailingDash)."""
    if prefix and len(name) > 1 and name.endswith("-"):
        name = name[:-2] + "a"
    return dns1123_subdomain(name)


def object_meta(meta, field="metadata", name_fn=name_is_dns_subdomain):
    """ValidateObjectMeta's name checks (the name is generated before this runs)."""
    errors = []
    if meta.get("generateName"):
        generate = meta["generateName"]
        errors += [invalid(f"{field}.generateName", generate, m) for m in name_fn(generate, True)]
    if not meta.get("name"):
        errors.append(required(f"{field}.name", "name or generateName is required"))
    else:
        errors += [invalid(f"{field}.name", meta["name"], m) for m in name_fn(meta["name"], False)]
    return errors


# ---------------------------------------------------------------- IP addresses

def _sloppy_ip(value):
    """netutils.ParseIPSloppy: an address, IPv4 octets with leading zeros included; None if not one."""
    if not isinstance(value, str) or "%" in value:
        return None
    if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", value):
        octets = [int(o) for o in value.split(".")]
        return ipaddress.IPv4Address(bytes(octets)) if max(octets) <= 255 else None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def ip_for_legacy_field(field, value, existing=()):
    """IsValidIPForLegacyField with strict validation: leading 0s and IPv4-mapped IPv6 are refused,
    unless the old object already had that value."""
    address = _sloppy_ip(value)
    if address is None:
        return [invalid(field, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    if value in existing:
        return []
    errors = []
    if address.version == 4 and str(address) != value and re.fullmatch(r"[\d.]+", value):
        errors.append(invalid(field, value, "must not have leading 0s"))
    if address.version == 6 and address.ipv4_mapped is not None:
        errors.append(invalid(field, value, "must not be an IPv4-mapped IPv6 address"))
    return errors


# ---------------------------------------------------------------- Services

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
IP_MODES = ("Proxy", "VIP")


def service_status(new, old):
    """ValidateServiceStatusUpdate: the errors of new's status.loadBalancer (old: the stored Service)."""
    ingress = (new.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    path = "status.loadBalancer.ingress"
    if (new.get("spec") or {}).get("type") != "LoadBalancer" and ingress:
        return [forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'")]
    existing = {i.get("ip") for i in (old.get("status") or {}).get("loadBalancer", {}).get("ingress") or []}
    errors = []
    for index, entry in enumerate(ingress):
        errors += _ingress_errors(f"{path}[{index}]", entry, existing)
    return errors


def _ingress_errors(path, entry, existing):
    errors = []
    ip, mode, hostname = entry.get("ip") or "", entry.get("ipMode"), entry.get("hostname") or ""
    if ip:
        errors += ip_for_legacy_field(f"{path}.ip", ip, existing)
    if mode is None:
        if ip:
            errors.append(required(f"{path}.ipMode", "must be specified when `ip` is set"))
    elif not ip:
        errors.append(forbidden(f"{path}.ipMode", "may not be specified when `ip` is not set"))
    elif mode not in IP_MODES:
        errors.append(not_supported(f"{path}.ipMode", mode, IP_MODES))
    if hostname:
        errors += [invalid(f"{path}.hostname", hostname, m) for m in dns1123_subdomain(hostname)]
        if _sloppy_ip(hostname) is not None:
            errors.append(invalid(f"{path}.hostname", hostname, "must be a DNS name, not an IP address"))
    return errors


def service_spec(new, old=None):
    """The port-name and type-dependent rules of ValidateServiceUpdate (old given) or ValidateServiceCreate,
    in their order."""
    errors = load_balancer_class(old, new) if old is not None else []
    spec = new.get("spec") or {}
    errors += service_port_names(spec.get("ports") or [])
    stype = spec.get("type")
    if not stype:
        errors.append(required("spec.type"))
    elif stype not in SERVICE_TYPES:
        errors.append(not_supported("spec.type", stype, SERVICE_TYPES))
    if stype == "ClusterIP":
        errors += [forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'")
                   for i, port in enumerate(spec.get("ports") or []) if port.get("nodePort")]
    if spec.get("loadBalancerSourceRanges") and stype != "LoadBalancer":
        errors.append(forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != "LoadBalancer":
        errors.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    return errors + load_balancer_class(None, new)


def service_port_names(ports):
    """validateServicePort's name rules: a DNS-1123 label (ValidateDNS1123Label, not the IANA service
    name of container ports: "8200-8080" is valid), required when there are several ports, unique."""
    errors, seen = [], set()
    for index, port in enumerate(ports):
        name, field = port.get("name") or "", f"spec.ports[{index}].name"
        if not name:
            if len(ports) > 1:
                errors.append(required(field))
            continue
        errors += [invalid(field, name, m) for m in dns1123_label(name)]
        if name in seen:
            errors.append(FieldError("Duplicate value", field, name))
        seen.add(name)
    return errors


def load_balancer_class(old, new):
    """validateLoadBalancerClassField: a qualified name, only on a LoadBalancer, fixed while it stays one."""
    spec = new.get("spec") or {}
    value = spec.get("loadBalancerClass")
    errors = []
    if old is not None and (old.get("spec") or {}).get("type") == "LoadBalancer" and spec.get("type") == "LoadBalancer":
        if (old.get("spec") or {}).get("loadBalancerClass") != value:
            errors.append(invalid("spec.loadBalancerClass", value, "may not change once set"))
    if spec.get("type") == "LoadBalancer":
        if value is not None:
            errors += [invalid("spec.loadBalancerClass", value, m) for m in qualified_name(str(value))]
    elif value is not None:
        errors.append(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))
    return errors


# ---------------------------------------------------------------- Events (events.k8s.io/v1)

EVENT_LIMITS = (("reportingInstance", 128), ("action", 128), ("reason", 128))


def _byte_length(value):
    return len(str(value or "").encode())


def event_create(event, namespace):
    """ValidateEventCreate for a request in events.k8s.io/v1: legacy rules first, then the strict ones."""
    errors = _legacy_event(event, namespace)
    errors += object_meta(event.get("metadata") or {})
    errors += _event_series(event.get("series"))
    if not event.get("eventTime"):
        errors.append(required("eventTime"))
    if event.get("type") not in ("Normal", "Warning"):
        errors.append(invalid("type", "", f"has invalid value: {event.get('type') or ''}"))
    for name, field in (("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp")):
        if event.get(name):
            errors.append(invalid(field, "", "needs to be unset"))
    if event.get("deprecatedCount"):
        errors.append(invalid("count", "", "needs to be unset"))
    source = event.get("deprecatedSource") or {}
    if source.get("component") or source.get("host"):
        errors.append(invalid("source", "", "needs to be unset"))
    return errors


def _legacy_event(event, namespace):
    errors = []
    regarding_namespace = (event.get("regarding") or {}).get("namespace") or ""
    mismatch = invalid("involvedObject.namespace", regarding_namespace, "does not match event.namespace")
    if not event.get("eventTime"):
        if (not regarding_namespace and namespace not in ("", "default")) or (
                regarding_namespace and namespace != regarding_namespace):
            errors.append(mismatch)
    else:
        if not regarding_namespace and namespace not in ("default", "kube-system"):
            errors.append(mismatch)
        errors += _reporter(event)
        errors += _limited(event)
    errors += [invalid("namespace", namespace, m) for m in dns1123_subdomain(namespace)]
    return errors


def _reporter(event):
    controller = event.get("reportingController") or ""
    errors = [] if controller else [required("reportingController")]
    return errors + [invalid("reportingController", controller, m) for m in qualified_name(controller)]


def _limited(event):
    """Required and at most 128 bytes each (reportingInstance, action, reason), a note of at most 1024."""
    errors = []
    for name, limit in EVENT_LIMITS:
        if not event.get(name):
            errors.append(required(name))
        if _byte_length(event.get(name)) > limit:
            errors.append(invalid(name, "", f"can have at most {limit} characters"))
    if _byte_length(event.get("note")) > 1024:
        errors.append(invalid("message", "", "can have at most 1024 characters"))
    return errors


def _event_series(series):
    if not series:
        return []
    errors = []
    if (series.get("count") or 0) < 2:
        errors.append(invalid("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        errors.append(required("series.lastObservedTime"))
    return errors
