"""The IoT registry at fleet scale: things, certificates, links and fleet indexing (SearchIndex).

moto serves the registry in the small tests, but every moto registry call scans the whole registry (DescribeThing
walks every thing, ListThings converts every thing per page, ListThingPrincipals walks every link) and its
SearchIndex / ListCertificates do not page. A :class:`RegistryStore` holds a large fleet with indexed look-ups and
answers the registry read operations the inventory input makes, for the (account, region) pairs it holds; other
accounts and regions stay with moto. Answers are checked against botocore's ``iot`` model like every emulated
operation.

Fleet indexing: ``set_indexing(account, region, thing_mode, device_defender_mode, connectivity_mode)``;
``SearchIndex`` answers only when the thing indexing mode is not OFF (else ResourceNotFoundException: the index
does not exist), up to 500 things a page [verify the AWS page maximum].
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .common import RequestContext, decode_token, encode_token
from .models import RequestError

REGISTRY_OPERATIONS = frozenset(
    {
        "ListThings",
        "SearchIndex",
        "ListCertificates",
        "DescribeCertificate",
        "ListThingPrincipals",
        "ListPrincipalThings",
        "ListThingGroupsForThing",
        "GetIndexingConfiguration",
    }
)
SEARCH_MAX_RESULTS = 500
LIST_MAX_RESULTS = 250


@dataclass
class _Region:
    account_id: str
    region: str
    things: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    certs: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    thing_principals: Dict[str, List[str]] = field(default_factory=dict)
    principal_things: Dict[str, List[str]] = field(default_factory=dict)
    indexing: Dict[str, str] = field(
        default_factory=lambda: {
            "thingIndexingMode": "OFF",
            "thingConnectivityIndexingMode": "OFF",
            "deviceDefenderIndexingMode": "OFF",
        }
    )
    version: int = 0
    _names: Optional[List[str]] = None
    _cert_order: Optional[List[Tuple[float, str]]] = None

    def changed(self) -> None:
        self.version += 1
        self._names = None
        self._cert_order = None

    def names(self) -> List[str]:
        if self._names is None:
            self._names = sorted(self.things)
        return self._names

    def cert_order(self) -> List[Tuple[float, str]]:
        if self._cert_order is None:
            self._cert_order = sorted((c["creationDate"], cid) for cid, c in self.certs.items())
        return self._cert_order


def _not_found(message: str) -> RequestError:
    return RequestError("ResourceNotFoundException", message, 404)


def _cert_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class RegistryStore:
    """Registry state per (account, region), only for the pairs a test or benchmark installs."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._regions: Dict[Tuple[str, str], _Region] = {}
        # Test hook: called with (operation, params) before an operation is answered (e.g. delete a thing mid-run).
        self.before_answer: Optional[Callable[[str, Dict[str, Any]], None]] = None

    def clear(self) -> None:
        with self.lock:
            self._regions.clear()
            self.before_answer = None

    def holds(self, account_id: str, region: str) -> bool:
        return (account_id, region) in self._regions

    def region(self, account_id: str, region: str) -> _Region:
        with self.lock:
            key = (account_id, region)
            if key not in self._regions:
                self._regions[key] = _Region(account_id, region)
            return self._regions[key]

    # ------------------------------------------------------------------------------------------ state helpers
    def set_indexing(
        self,
        account_id: str,
        region: str,
        thing_mode: str = "REGISTRY",
        device_defender_mode: str = "OFF",
        connectivity_mode: str = "OFF",
    ) -> None:
        with self.lock:
            self.region(account_id, region).indexing = {
                "thingIndexingMode": thing_mode,
                "thingConnectivityIndexingMode": connectivity_mode,
                "deviceDefenderIndexingMode": device_defender_mode,
            }

    def put_thing(
        self,
        account_id: str,
        region: str,
        name: str,
        *,
        thing_type: Optional[str] = None,
        attributes: Optional[Dict[str, str]] = None,
        groups: Iterable[str] = (),
        connected: bool = False,
        connectivity_time: float = 0.0,
        violations: Optional[Dict[str, List[str]]] = None,
    ) -> Dict[str, Any]:
        """Create or update a thing (an update bumps its version, as UpdateThing does)."""
        with self.lock:
            rd = self.region(account_id, region)
            old = rd.things.get(name)
            thing = {
                "thingName": name,
                "thingId": old["thingId"] if old else hashlib.sha256(f"{account_id}/{name}".encode()).hexdigest()[:36],
                "thingArn": f"arn:aws:iot:{region}:{account_id}:thing/{name}",
                "attributes": dict(attributes or {}),
                "version": (old["version"] + 1) if old else 1,
                "groups": sorted(set(groups)),
                "connected": connected,
                "connectivity_time": connectivity_time,
                "violations": dict(violations or {}),
            }
            if thing_type:
                thing["thingTypeName"] = thing_type
            rd.things[name] = thing
            rd.thing_principals.setdefault(name, [])
            rd.changed()
            return thing

    def delete_thing(self, account_id: str, region: str, name: str) -> None:
        with self.lock:
            rd = self.region(account_id, region)
            rd.things.pop(name, None)
            for arn in rd.thing_principals.pop(name, []):
                rd.principal_things[arn] = [t for t in rd.principal_things.get(arn, []) if t != name]
            rd.changed()

    def put_certificate(
        self, account_id: str, region: str, certificate_id: str, status: str = "ACTIVE", created: float = 0.0
    ) -> str:
        with self.lock:
            rd = self.region(account_id, region)
            arn = f"arn:aws:iot:{region}:{account_id}:cert/{certificate_id}"
            rd.certs[certificate_id] = {
                "certificateArn": arn,
                "certificateId": certificate_id,
                "status": status,
                "creationDate": float(created),
            }
            rd.principal_things.setdefault(arn, [])
            rd.changed()
            return arn

    def delete_certificate(self, account_id: str, region: str, certificate_id: str) -> None:
        """Delete a certificate and its links (AWS refuses while attached; tests want the race anyway)."""
        with self.lock:
            rd = self.region(account_id, region)
            cert = rd.certs.pop(certificate_id, None)
            if cert is not None:
                for name in rd.principal_things.pop(cert["certificateArn"], []):
                    rd.thing_principals[name] = [
                        p for p in rd.thing_principals.get(name, []) if _cert_id(p) != certificate_id
                    ]
            rd.changed()

    def attach(self, account_id: str, region: str, thing: str, principal_arn: str) -> None:
        with self.lock:
            rd = self.region(account_id, region)
            if thing not in rd.things:
                raise KeyError(thing)
            if principal_arn not in rd.thing_principals[thing]:
                rd.thing_principals[thing].append(principal_arn)
                rd.principal_things.setdefault(principal_arn, []).append(thing)
            rd.changed()

    def seed(
        self,
        account_id: str,
        region: str,
        things: int,
        *,
        start: int = 0,
        created: float = 1.7e9,
        groups: Tuple[str, ...] = ("site-a", "site-b", "site-c"),
    ) -> None:
        """``things`` synthetic things ``thing-000000``…, each with one certificate (fast: no crypto)."""
        with self.lock:
            rd = self.region(account_id, region)
            for i in range(start, start + things):
                name = f"thing-{i:07d}"
                cid = hashlib.sha256(f"cert/{account_id}/{region}/{name}".encode()).hexdigest()
                status = "REVOKED" if i % 97 == 0 else "INACTIVE" if i % 89 == 0 else "ACTIVE"
                rd.things[name] = {
                    "thingName": name,
                    "thingId": cid[:36],
                    "thingArn": f"arn:aws:iot:{region}:{account_id}:thing/{name}",
                    "thingTypeName": "sensor" if i % 3 else "gateway",
                    "attributes": {"site": groups[i % len(groups)], "owner": f"team-{i % 7}", "model": "m1"},
                    "version": 1,
                    "groups": [groups[i % len(groups)]],
                    "connected": i % 5 != 0,
                    "connectivity_time": created,
                    "violations": {},
                }
                arn = f"arn:aws:iot:{region}:{account_id}:cert/{cid}"
                rd.certs[cid] = {
                    "certificateArn": arn,
                    "certificateId": cid,
                    "status": status,
                    "creationDate": created + i,
                }
                rd.thing_principals[name] = [arn]
                rd.principal_things[arn] = [name]
            rd.changed()

    # -------------------------------------------------------------------------------------------- operations
    def _rd(self, ctx: RequestContext, params: Dict[str, Any]) -> _Region:
        hook = self.before_answer
        if hook is not None:
            hook(ctx.operation, params)
        return self.region(ctx.account_id, ctx.region)

    def op_GetIndexingConfiguration(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        with self.lock:
            return {
                "thingIndexingConfiguration": dict(rd.indexing),
                "thingGroupIndexingConfiguration": {"thingGroupIndexingMode": "OFF"},
            }

    def op_ListThings(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        limit = int(params.get("maxResults") or 50)
        with self.lock:
            names = rd.names()
            lo = 0
            if params.get("nextToken"):
                lo = bisect.bisect_right(names, decode_token(ctx, params["nextToken"], params))
            page = names[lo : lo + limit]
            out: Dict[str, Any] = {"things": [self._listed(rd.things[n]) for n in page]}
            if lo + limit < len(names):
                out["nextToken"] = encode_token(ctx.operation, page[-1], params)
        return out

    @staticmethod
    def _listed(thing: Dict[str, Any]) -> Dict[str, Any]:
        out = {k: thing[k] for k in ("thingName", "thingArn", "attributes", "version")}
        if "thingTypeName" in thing:
            out["thingTypeName"] = thing["thingTypeName"]
        return out

    def op_SearchIndex(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        index = params.get("indexName") or "AWS_Things"
        if index != "AWS_Things" or rd.indexing["thingIndexingMode"] == "OFF":
            raise _not_found(f"Index {index} does not exist.")
        limit = int(params.get("maxResults") or 100)
        if limit > SEARCH_MAX_RESULTS:
            raise RequestError(ctx.error_code, f"maxResults must be at most {SEARCH_MAX_RESULTS}.")
        match = _query(params["queryString"])
        with self.lock:
            names = rd.names()
            lo = 0
            if params.get("nextToken"):
                lo = bisect.bisect_right(names, decode_token(ctx, params["nextToken"], params))
            docs: List[Dict[str, Any]] = []
            i = lo
            while i < len(names) and len(docs) < limit:
                thing = rd.things[names[i]]
                if match(thing):
                    docs.append(self._document(rd, thing))
                i += 1
            more = any(match(rd.things[n]) for n in names[i:])
            out: Dict[str, Any] = {"things": docs, "thingGroups": []}
            if more and docs:
                out["nextToken"] = encode_token(ctx.operation, docs[-1]["thingName"], params)
        return out

    @staticmethod
    def _document(rd: _Region, thing: Dict[str, Any]) -> Dict[str, Any]:
        doc: Dict[str, Any] = {
            "thingName": thing["thingName"],
            "thingId": thing["thingId"],
            "thingGroupNames": list(thing["groups"]),
            "attributes": dict(thing["attributes"]),
        }
        if "thingTypeName" in thing:
            doc["thingTypeName"] = thing["thingTypeName"]
        if rd.indexing["thingConnectivityIndexingMode"] != "OFF":
            doc["connectivity"] = {"connected": thing["connected"], "timestamp": int(thing["connectivity_time"] * 1000)}
        if rd.indexing["deviceDefenderIndexingMode"] == "VIOLATIONS":
            profiles = {
                profile: {"behaviors": {b: {"inViolation": True} for b in behaviors}}
                for profile, behaviors in thing["violations"].items()
            }
            count = sum(len(b) for b in thing["violations"].values())
            doc["deviceDefender"] = json.dumps({"violationCount": count, "securityProfiles": profiles})
        return doc

    def op_ListCertificates(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        limit = int(params.get("pageSize") or 25)
        ascending = bool(params.get("ascendingOrder"))
        with self.lock:
            order = rd.cert_order() if ascending else rd.cert_order()[::-1]
            lo = 0
            if params.get("marker"):
                try:
                    created, cid = json.loads(base64.b64decode(params["marker"]))
                except ValueError:
                    raise RequestError(ctx.error_code, "The marker is not valid.") from None
                ascending_order = rd.cert_order()
                pos = bisect.bisect_left(ascending_order, (created, cid))
                lo = pos + 1 if ascending else len(ascending_order) - pos
            page = order[lo : lo + limit]
            out: Dict[str, Any] = {"certificates": [dict(rd.certs[cid]) for _c, cid in page]}
            if lo + limit < len(order):
                out["nextMarker"] = base64.b64encode(json.dumps(list(page[-1])).encode()).decode()
        return out

    def op_DescribeCertificate(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        with self.lock:
            cert = rd.certs.get(params["certificateId"])
            if cert is None:
                raise _not_found(f"The certificate {params['certificateId']} does not exist.")
            return {"certificateDescription": dict(cert)}

    def op_ListThingPrincipals(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        with self.lock:
            if params["thingName"] not in rd.things:
                raise _not_found(
                    f"Failed to list principals for thing {params['thingName']} because the thing does not exist in your account"
                )
            return {"principals": list(rd.thing_principals.get(params["thingName"], []))}

    def op_ListPrincipalThings(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        with self.lock:
            if params["principal"] not in rd.principal_things:
                raise _not_found("The principal does not exist.")
            return {"things": list(rd.principal_things[params["principal"]])}

    def op_ListThingGroupsForThing(self, ctx: RequestContext, params: Dict[str, Any]) -> Dict[str, Any]:
        rd = self._rd(ctx, params)
        with self.lock:
            thing = rd.things.get(params["thingName"])
            if thing is None:
                raise _not_found(f"Thing {params['thingName']} cannot be found.")
            arn = f"arn:aws:iot:{rd.region}:{rd.account_id}:thinggroup/"
            return {"thingGroups": [{"groupName": g, "groupArn": arn + g} for g in thing["groups"]]}


_FIELDS = {
    "thingName": lambda t: [t["thingName"]],
    "thingTypeName": lambda t: [t.get("thingTypeName", "")],
    "thingGroupNames": lambda t: list(t["groups"]),
    "connectivity.connected": lambda t: ["true" if t["connected"] else "false"],
}


def _query(text: str) -> Callable[[Dict[str, Any]], bool]:
    """The query subset the emulator understands: ``field:value`` terms (value may end in ``*``) joined by AND."""
    terms = []
    for part in text.split(" AND "):
        name, sep, value = part.strip().partition(":")
        if not sep or not value:
            raise RequestError("InvalidQueryException", f"Syntax error in query: {text}")
        if name.startswith("attributes."):
            attr = name[len("attributes.") :]
            terms.append((lambda t, a=attr: [str(t["attributes"].get(a, ""))], value))
        elif name in _FIELDS:
            terms.append((_FIELDS[name], value))
        else:
            raise RequestError("InvalidQueryException", f"Unsupported field in query: {name}")

    def one(values: List[str], pattern: str) -> bool:
        if pattern.endswith("*"):
            return any(v.startswith(pattern[:-1]) for v in values)
        return pattern in values

    return lambda thing: all(one(get(thing), pattern) for get, pattern in terms)
