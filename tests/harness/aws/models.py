"""botocore service models on the server side: route, parse, validate, serialize, check.

botocore only ships the client half (serializers for requests, parsers for responses). The emulator needs the
other half: find the operation a request is for, turn the wire request back into the parameter dict the caller
passed to boto3, validate it the way the service would (including the ``max``/``enum``/``pattern`` constraints
botocore's client-side validator skips), and check every response it builds against the output shape.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import re
import threading
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote

import botocore.session
from botocore.validate import ParamValidator

_SESSION_LOCK = threading.Lock()
_SESSION: Optional[botocore.session.Session] = None


def _session() -> botocore.session.Session:
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = botocore.session.get_session()
        return _SESSION


@functools.cache
def service_model(name: str):
    """The botocore ServiceModel of ``name`` (botocore service name, e.g. ``iot``, ``ssm-incidents``)."""
    return _session().get_service_model(name)


# signing name (credential scope) -> botocore service name, for the services the harness meets. Anything else is
# looked up as a botocore service of the same name.
_SIGNING_TO_SERVICE = {
    "iot": "iot",
    "ssm": "ssm",
    "ssm-incidents": "ssm-incidents",
    "sts": "sts",
    "sns": "sns",
    "s3": "s3",
}


@functools.cache
def model_for_signing_name(signing_name: str):
    name = _SIGNING_TO_SERVICE.get(signing_name, signing_name)
    try:
        return service_model(name)
    except Exception:
        return None


class RequestError(Exception):
    """A request the service refuses: rendered as an AWS error response."""

    def __init__(self, code: str, message: str, status: int = 400, extra: Optional[Dict[str, Any]] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}


class ModelViolation(AssertionError):
    """The emulator built a response that does not satisfy the service model (a bug in the harness)."""


# --------------------------------------------------------------------------------------------------- routing
class _Route:
    __slots__ = ("labels", "method", "op_name", "query_literals", "regex", "score")

    def __init__(self, method: str, uri: str, op_name: str):
        self.method = method
        self.op_name = op_name
        path, _, query = uri.partition("?")
        self.query_literals = [q.split("=", 1)[0] for q in query.split("&") if q]
        pattern = ""
        self.labels: List[Tuple[str, str]] = []
        literal = 0
        pos = 0
        for m in re.finditer(r"\{([^}]+)\}", path):
            lit = path[pos : m.start()]
            literal += len(lit)
            pattern += re.escape(lit)
            name = m.group(1)
            group = f"g{len(self.labels)}"
            if name.endswith("+"):
                self.labels.append((group, name[:-1]))
                pattern += f"(?P<{group}>.+)"
            else:
                self.labels.append((group, name))
                pattern += f"(?P<{group}>[^/]+)"
            pos = m.end()
        lit = path[pos:]
        literal += len(lit)
        pattern += re.escape(lit)
        if pattern.endswith("/") and len(pattern) > 1:
            pattern = pattern[:-1] + "/?"
        self.regex = re.compile(pattern + "$")
        self.score = (literal, len(self.query_literals), -len(self.labels))


class Router:
    """Maps (method, raw path, query) to the botocore operation of a rest-* service."""

    def __init__(self, model):
        self.model = model
        routes = []
        for op_name in model.operation_names:
            http = model.operation_model(op_name).http
            routes.append(_Route(http.get("method", "POST"), http.get("requestUri", "/"), op_name))
        routes.sort(key=lambda r: r.score, reverse=True)
        self.routes = routes

    def match(self, method: str, raw_path: str, query: Dict[str, List[str]]):
        for route in self.routes:
            if route.method != method:
                continue
            m = route.regex.match(raw_path)
            if not m:
                continue
            if any(q not in query for q in route.query_literals):
                continue
            labels = {name: unquote(m.group(group)) for group, name in route.labels}
            return route.op_name, labels
        return None, {}


@functools.cache
def router_for(service_name: str) -> Router:
    return Router(service_model(service_name))


def operation_name_for(model, method: str, raw_path: str, query: Dict[str, List[str]], headers, form) -> str:
    """Best-effort botocore operation name of a request to any service (for logging, faults, rate limits)."""
    if model is None:
        return "Unknown"
    protocol = model.metadata.get("protocol")
    if protocol in ("query", "ec2"):
        action = (form or {}).get("Action") or (query.get("Action") or [None])[0]
        return action or "Unknown"
    if protocol == "json":
        target = headers.get("X-Amz-Target", "")
        return target.rsplit(".", 1)[-1] if target else "Unknown"
    op, _ = router_for(model.service_name).match(method, raw_path, query)
    return op or "Unknown"


# --------------------------------------------------------------------------------------------------- parsing
def _parse_timestamp(value: Any) -> _dt.datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(float(value), _dt.timezone.utc)
    if isinstance(value, str):
        s = value.strip()
        try:
            return _dt.datetime.fromtimestamp(float(s), _dt.timezone.utc)
        except ValueError:
            pass
        try:
            d = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                d = parsedate_to_datetime(s)
            except (TypeError, ValueError):
                raise ValueError(f"not a timestamp: {value!r}") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=_dt.timezone.utc)
        return d
    raise ValueError(f"not a timestamp: {value!r}")


def _from_text(shape, text: str) -> Any:
    t = shape.type_name
    if t in ("integer", "long"):
        return int(text)
    if t in ("float", "double"):
        return float(text)
    if t == "boolean":
        low = text.lower()
        if low not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return low == "true"
    if t == "timestamp":
        return _parse_timestamp(text)
    if t == "blob":
        return base64.b64decode(text)
    return text


def _from_json(shape, value: Any) -> Any:
    t = shape.type_name
    if value is None:
        return None
    if t == "structure":
        if not isinstance(value, dict):
            raise ValueError(f"expected an object for {shape.name}")
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if key in value:
                out[name] = _from_json(member, value[key])
        return out
    if t == "list":
        if not isinstance(value, list):
            raise ValueError(f"expected a list for {shape.name}")
        return [_from_json(shape.member, v) for v in value]
    if t == "map":
        if not isinstance(value, dict):
            raise ValueError(f"expected a map for {shape.name}")
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if t == "timestamp":
        return _parse_timestamp(value)
    if t == "blob":
        return base64.b64decode(value)
    return value


def parse_rest_json_request(
    op_model, labels: Dict[str, str], query: Dict[str, List[str]], headers, body: bytes, error_code: str
) -> Dict[str, Any]:
    """Turn a rest-json request back into boto3 parameters; raises RequestError(error_code) when it can't."""
    shape = op_model.input_shape
    params: Dict[str, Any] = {}
    if shape is None:
        return params
    try:
        doc = json.loads(body) if body and body.strip() else {}
    except ValueError as exc:
        raise RequestError("SerializationException", f"Could not parse request body: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError("SerializationException", "Request body must be a JSON object")
    payload = shape.serialization.get("payload")
    try:
        for name, member in shape.members.items():
            loc = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if loc == "uri":
                if wire in labels:
                    params[name] = _from_text(member, labels[wire])
            elif loc == "querystring":
                if member.type_name == "map":
                    continue
                if wire in query:
                    vals = query[wire]
                    if member.type_name == "list":
                        params[name] = [_from_text(member.member, v) for v in vals]
                    else:
                        params[name] = _from_text(member, vals[0])
            elif loc == "header":
                val = headers.get(wire)
                if val is not None:
                    params[name] = _from_text(member, val)
            elif loc in ("headers", "statusCode"):
                continue
            elif payload:
                if name == payload:
                    params[name] = _from_json(member, doc)
            else:
                wire_key = member.serialization.get("name", name)
                if wire_key in doc:
                    params[name] = _from_json(member, doc[wire_key])
    except (ValueError, TypeError) as exc:
        raise RequestError(error_code, f"Invalid request parameter: {exc}") from None
    return params


def parse_json_request(op_model, body: bytes, error_code: str) -> Dict[str, Any]:
    """Turn a json-protocol (X-Amz-Target) request body back into boto3 parameters."""
    shape = op_model.input_shape
    if shape is None:
        return {}
    try:
        doc = json.loads(body) if body and body.strip() else {}
    except ValueError as exc:
        raise RequestError("SerializationException", f"Could not parse request body: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError("SerializationException", "Request body must be a JSON object")
    try:
        return _from_json(shape, doc)
    except (ValueError, TypeError) as exc:
        raise RequestError(error_code, f"Invalid request parameter: {exc}") from None


# ------------------------------------------------------------------------------------------------ validation
_VALIDATOR = ParamValidator()


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str):
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _constraint_errors(shape, value: Any, path: str, errors: List[str]) -> None:
    """The constraints botocore's client-side validator leaves to the service: max, enum, pattern."""
    if value is None:
        return
    t = shape.type_name
    md = shape.metadata
    if t == "structure":
        if isinstance(value, dict):
            for name, member in shape.members.items():
                if name in value:
                    _constraint_errors(member, value[name], f"{path}.{name}", errors)
        return
    if t == "list":
        if isinstance(value, list):
            if "max" in md and len(value) > md["max"]:
                errors.append(f"{path}: list has {len(value)} items, more than the maximum {md['max']}")
            for i, v in enumerate(value):
                _constraint_errors(shape.member, v, f"{path}[{i}]", errors)
        return
    if t == "map":
        if isinstance(value, dict):
            if "max" in md and len(value) > md["max"]:
                errors.append(f"{path}: map has {len(value)} entries, more than the maximum {md['max']}")
            for k, v in value.items():
                _constraint_errors(shape.value, v, f"{path}.{k}", errors)
        return
    if t == "string" and isinstance(value, str):
        if "max" in md and len(value) > md["max"]:
            errors.append(f"{path}: length {len(value)} is greater than the maximum {md['max']}")
        if "min" in md and len(value) < md["min"]:
            errors.append(f"{path}: length {len(value)} is less than the minimum {md['min']}")
        enum = md.get("enum")
        if enum and value not in enum:
            errors.append(f"{path}: value {value!r} is not one of {', '.join(enum)}")
        pattern = md.get("pattern")
        if pattern:
            rx = _compiled(pattern)
            if rx is not None and not rx.fullmatch(value):
                errors.append(f"{path}: value {value!r} does not match the pattern {pattern}")
        return
    if t in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in md and value > md["max"]:
            errors.append(f"{path}: value {value} is greater than the maximum {md['max']}")
        if "min" in md and value < md["min"]:
            errors.append(f"{path}: value {value} is less than the minimum {md['min']}")


def validate_params(op_model, params: Dict[str, Any], error_code: str) -> None:
    """Validate boto3-style params against the input shape; raise RequestError(error_code, ...) if invalid."""
    shape = op_model.input_shape
    if shape is None:
        return
    report = _VALIDATOR.validate(params, shape)
    errors: List[str] = []
    if report.has_errors():
        errors.append(report.generate_report())
    _constraint_errors(shape, params, op_model.name, errors)
    if errors:
        raise RequestError(error_code, "; ".join(errors))


# -------------------------------------------------------------------------------------- response shape check
def check_shape(shape, value: Any, path: str = "$", errors: Optional[List[str]] = None) -> List[str]:
    """Check a JSON-ready value (timestamps as epoch numbers or datetimes) against a botocore shape.

    Returns the list of problems (empty when the value is valid): unknown/missing members, wrong types, values
    outside enums, out-of-range lengths and numbers, pattern mismatches. Checkers are compiled once per shape.
    """
    if errors is None:
        errors = []
    found = _checker(shape)(value)
    if found:
        errors.extend(f"{path}{e}" for e in found)
    return errors


_CHECKERS: Dict[Tuple[int, str], Tuple[Any, Any]] = {}
_CHECKERS_LOCK = threading.Lock()
_NUMBER = (int, float)


def _checker(shape):
    key = (id(shape._shape_resolver), shape.name)
    hit = _CHECKERS.get(key)
    if hit is not None:
        return hit[1]
    with _CHECKERS_LOCK:
        hit = _CHECKERS.get(key)
        if hit is not None:
            return hit[1]
        holder: List[Any] = []

        def deferred(v):
            return holder[0](v)

        _CHECKERS[key] = (shape._shape_resolver, deferred)  # recursive shapes resolve through this
        fn = _build_checker(shape)
        holder.append(fn)
        _CHECKERS[key] = (shape._shape_resolver, fn)
        return fn


def _build_checker(shape):
    t = shape.type_name
    md = shape.metadata
    mx, mn = md.get("max"), md.get("min")
    if t == "structure":
        members = {}
        required = []
        for name, m in shape.members.items():
            wire = m.serialization.get("name", name)
            members[wire] = m
            if name in shape.required_members and not m.serialization.get("location"):
                required.append(wire)
        checkers: Dict[str, Any] = {}
        union = bool(md.get("union"))

        def check_struct(v):
            if not isinstance(v, dict):
                return [f": expected an object, got {type(v).__name__}"]
            errs = None
            for k, item in v.items():
                c = checkers.get(k)
                if c is None:
                    m = members.get(k)
                    if m is None:
                        errs = (errs or []) + [f": unknown member {k!r}"]
                        continue
                    c = checkers[k] = _checker(m)
                if item is None:
                    errs = (errs or []) + [f".{k}: null"]
                    continue
                e = c(item)
                if e:
                    errs = (errs or []) + [f".{k}{x}" for x in e]
            for r in required:
                if r not in v:
                    errs = (errs or []) + [f": missing required member {r!r}"]
            if union and len(v) != 1:
                errs = (errs or []) + [f": union must have exactly one member, has {len(v)}"]
            return errs

        return check_struct
    if t == "list":
        member = shape.member

        def check_list(v):
            if not isinstance(v, list):
                return [f": expected a list, got {type(v).__name__}"]
            errs = None
            if mx is not None and len(v) > mx:
                errs = [f": {len(v)} items > max {mx}"]
            c = _checker(member)
            for i, item in enumerate(v):
                e = c(item) if item is not None else [": null"]
                if e:
                    errs = (errs or []) + [f"[{i}]{x}" for x in e]
            return errs

        return check_list
    if t == "map":
        kshape, vshape = shape.key, shape.value

        def check_map(v):
            if not isinstance(v, dict):
                return [f": expected a map, got {type(v).__name__}"]
            errs = None
            kc, vc = _checker(kshape), _checker(vshape)
            for k, item in v.items():
                e = (kc(k) or []) + ((vc(item) or []) if item is not None else [": null"])
                if e:
                    errs = (errs or []) + [f".{k}{x}" for x in e]
            return errs

        return check_map
    if t == "string":
        enum = frozenset(md["enum"]) if md.get("enum") else None
        rx = _compiled(md["pattern"]) if md.get("pattern") else None

        def check_string(v):
            if not isinstance(v, str):
                return [f": expected a string, got {type(v).__name__}"]
            if enum is not None and v not in enum:
                return [f": {v!r} not in enum {sorted(enum)}"]
            if mx is not None and len(v) > mx:
                return [f": length {len(v)} > max {mx}"]
            if mn is not None and len(v) < mn:
                return [f": length {len(v)} < min {mn}"]
            if rx is not None and not rx.fullmatch(v):
                return [f": {v!r} does not match {rx.pattern}"]
            return None

        return check_string
    if t in ("integer", "long", "float", "double"):
        integral = t in ("integer", "long")

        def check_number(v):
            if isinstance(v, bool) or not isinstance(v, int if integral else _NUMBER):
                return [f": expected {'an integer' if integral else 'a number'}, got {type(v).__name__}"]
            if mx is not None and v > mx:
                return [f": {v} > max {mx}"]
            if mn is not None and v < mn:
                return [f": {v} < min {mn}"]
            return None

        return check_number
    if t == "boolean":
        return lambda v: None if isinstance(v, bool) else [f": expected a boolean, got {type(v).__name__}"]
    if t == "timestamp":

        def check_ts(v):
            if isinstance(v, _dt.datetime) or (isinstance(v, _NUMBER) and not isinstance(v, bool)):
                return None
            return [f": expected an epoch-seconds number, got {type(v).__name__}"]

        return check_ts
    if t == "blob":
        return lambda v: None if isinstance(v, (str, bytes)) else [": expected base64 text"]
    return lambda v: None


def json_default(o: Any) -> Any:
    """json.dumps ``default``: datetimes as epoch seconds (what the real services send)."""
    if isinstance(o, _dt.datetime):
        if o.tzinfo is None:
            o = o.replace(tzinfo=_dt.timezone.utc)
        return o.timestamp()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_wire(value: Any) -> Any:
    """datetimes -> epoch seconds (float), recursively; other values unchanged (JSON-ready)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def check_output(op_model, body: Dict[str, Any]) -> None:
    """Raise ModelViolation when ``body`` (the JSON body of a response) does not fit the output shape."""
    shape = op_model.output_shape
    if shape is None:
        if body:
            raise ModelViolation(f"{op_model.name}: output has no shape but body is {body!r}")
        return
    errors = check_shape(shape, body, op_model.name)
    if errors:
        shown = "; ".join(errors[:10])
        more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
        raise ModelViolation(f"emulator response violates the {op_model.name} output shape: {shown}{more}")
