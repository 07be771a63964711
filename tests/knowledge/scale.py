"""A fleet of 100,000 things for the detections, under Splunk's real limits (``limits``) on a distributed deployment.

Built to stay affordable in ``make test``: the thing inventory and its certificate links come from the real code
(``events.thing_event``, ``inventory.lookup_row``, ``certificate_index.rows``) for every thing; metric events are
generated on demand, per search window, with the fields the add-on's props give them (``ScaleStore``; no automatic
lookup fields: on indexers the inventory lookup is not available). Things report each metric once an hour (at a
minute of their own), so a run reads 100,000 events per metric-hour instead of 1.2 million: the row counts that meet
Splunk's caps (KV collections, join and lookup rows: one per thing and value) are those of the full fleet.

Timeline: a clean hour 29 hours before ``NOW`` (what the bootstraps learn), then two hours of events before ``NOW``,
the plants active in the second; the scheduler runs from two hours before ``NOW`` to half an hour after it. ``iot_defender_baseline_min_points`` is 1 here (the SOC's tuning for one
hourly datapoint of history; the shipped 288 assumes 5-minute datapoints over a day).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Iterator, List, Set, Tuple

from tests.knowledge import behaviour, model, scheduler, splkit, splrun

THINGS = 100_000
H = 3600.0
NOW = behaviour.NOW.timestamp()
HISTORY = (NOW - 29 * H, NOW - 28 * H)
LIVE = (NOW - 2 * H, NOW)  # events: a clean hour, then an hour with the plants
PLANTS_FROM = NOW - 1 * H
SCHEDULE = (NOW - H - 5 * 60, NOW + 30 * 60)  # hourly searches twice over events, 15-minute ones 7 times
ACCOUNT, REGION = "123456789012", "us-east-1"
TYPES = ("PumpStation", "ValveController", "FlowMeter", "RtuGateway")
# A lean device: one listening TCP port, one destination, bytes out and authorization failures (the baselines still
# hold 3 rows per thing in iot_defender_seen_values and 2 in iot_defender_metric_baseline: 300,000 and 200,000 rows).
METRICS = (
    "aws:listening-tcp-ports",
    "aws:destination-ip-addresses",
    "aws:all-bytes-out",
    "aws:num-authorization-failures",
)

# (kind, thing index, value): indexes past 50,000 sit beyond a truncated KV read or join
PLANTS = (
    ("port", 77_777, "23"),
    ("port", 12_345, "2323"),
    ("dest", 88_888, "203.0.113.77/32"),
    ("egress", 66_666, 25),
    ("auth_burst", 99_001, 60),
    ("cert_expiring", 95_000, None),
)


def thing_name(i: int) -> str:
    return f"{TYPES[i % 4].lower()}-{i:06d}"


def certificate_id(i: int) -> str:
    return f"{i:064x}"


def _plant(kind: str, i: int) -> Any:
    return next((v for k, n, v in PLANTS if k == kind and n == i), None)


class ScaleStore:
    """Events of the scale fleet for a search window, generated on demand (newest hour first)."""

    def __init__(self, other: List[Dict[str, Any]]):
        self.other = splrun.EventStore(other)
        self.planted = {n for _k, n, _v in PLANTS}

    def window(self, earliest: float, latest: float, ast: Any) -> Iterator[Dict[str, Any]]:
        terms = list(splkit.base_terms(ast))
        sourcetypes = {v for f, op, v, neg in terms if f == "sourcetype" and not neg}
        if sourcetypes and "aws:iot:defender:metric" not in sourcetypes:
            yield from self.other.window(earliest, latest, ast)
            return
        names = [m for m in METRICS if m in {v for f, _o, v, neg in terms if f == "name" and not neg}] or list(METRICS)
        for start, end in (LIVE, HISTORY):
            hour = max(start, earliest - earliest % H)
            while hour < min(end, latest):
                for i in range(THINGS):
                    when = hour + (i * 37) % 3600
                    if earliest <= when < latest:
                        for name in names:
                            yield self._event(i, name, when)
                hour += H
        yield from self.other.window(earliest, latest, ast)

    def _event(self, i: int, name: str, when: float) -> Dict[str, Any]:
        thing = thing_name(i)
        live = when >= PLANTS_FROM and i in self.planted
        event: Dict[str, Any] = {
            "_time": when,
            "_raw": "",
            "index": "iot",
            "sourcetype": "aws:iot:defender:metric",
            "source": f"aws:iot:{ACCOUNT}:{REGION}:metrics-export",
            "name": name,
            "metric_name": name,
            "thing_name": thing,
            "dvc": thing,
            "account_id": ACCOUNT,
            "region": REGION,
        }
        if name == "aws:listening-tcp-ports":
            extra = _plant("port", i) if live else None
            event.update(transport="tcp", port=["8883", extra] if extra else "8883")
        elif name == "aws:destination-ip-addresses":
            cidrs = [f"192.0.{2 + i % 50}.{i % 250}/32"]
            cidrs += [_plant("dest", i)] if live and _plant("dest", i) else []
            event.update(dest_cidr=cidrs if len(cidrs) > 1 else cidrs[0], dest_ip=[c.split("/")[0] for c in cidrs])
        else:
            base = 50_000 + i % 997 if name == "aws:all-bytes-out" else i % 2
            factor = (_plant("egress", i) or 1) if live and name != "aws:num-authorization-failures" else 1
            value = base * factor
            if live and name == "aws:num-authorization-failures" and _plant("auth_burst", i):
                value = _plant("auth_burst", i)
            field = "bytes_out" if name == "aws:all-bytes-out" else "authorization_failures"
            event.update({field: str(value), "metric_value": str(value)})
        return event


def _inventory() -> List[Dict[str, Any]]:
    from iot_defender import events, inventory

    rows = []
    for i in range(THINGS):
        name = thing_name(i)
        thing = {
            "thingName": name,
            "thingTypeName": TYPES[i % 4],
            "thingArn": f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}",
            "attributes": {"site": f"site-{i % 40}"},
            "version": 1,
        }
        event = events.thing_event(
            thing,
            account_id=ACCOUNT,
            region=REGION,
            snapshot_time=behaviour.NOW,
            groups=[f"line-{i % 7}"],
            certificates=[{"certificateId": certificate_id(i), "status": "ACTIVE"}],
        )
        rows.append(inventory.lookup_row(event, when=behaviour.NOW))
    return rows


def _findings() -> List[Dict[str, Any]]:
    """The planted audit finding (a device certificate expiring), shaped like the fleet's own findings."""
    small = behaviour.world().store
    ast = splkit.parse_base_search(
        'sourcetype="aws:iot:defender:audit:finding" checkName="DEVICE_CERTIFICATE_SHARED_CHECK"'
    )
    template = next(e for e in small.window(0, NOW + 1, ast) if splkit.matches(ast, e, e["_raw"]))
    out = []
    for kind, i, _v in PLANTS:
        if kind != "cert_expiring":
            continue
        event = {
            k: v for k, v in template.items() if k not in ("thing_name", "user", "relatedResources{}.resourceType")
        }
        event.pop("relatedResources{}.resourceIdentifier.clientId", None)
        cert = certificate_id(i)
        event.update(
            _time=LIVE[0] + 300,
            checkName="DEVICE_CERTIFICATE_EXPIRING_CHECK",
            signature="DEVICE_CERTIFICATE_EXPIRING_CHECK",
            severity="medium",
            certificate_id=cert,
            dest=cert,
            resource_id=cert,
            findingId=f"scale{i}",
            id=f"scale{i}",
            description="Certificate expires within 30 days",
        )
        out.append(event)
    return out


@functools.lru_cache(maxsize=1)
def world() -> behaviour.World:
    inventory_rows = _inventory()
    findings = _findings()
    return behaviour.World(
        store=ScaleStore(findings),
        tables=behaviour.tables(behaviour.kv_collections(inventory_rows)),
        events=THINGS * len(METRICS) * 5 + len(findings),
        things=THINGS,
    )


def truth() -> Dict[str, Set[str]]:
    by: Dict[str, List[Tuple[int, Any]]] = {}
    for kind, i, value in PLANTS:
        by.setdefault(kind, []).append((i, value))
    things = lambda kind: {thing_name(i) for i, _v in by.get(kind, [])}  # noqa: E731
    return {
        "New listening port": {f"{thing_name(i)}:{v}/tcp" for i, v in by["port"]},
        "Risky port open": things("port"),
        "Listening port outside the allow-list": things("port"),
        "New destination": {f"{thing_name(i)}:{v}" for i, v in by["dest"]},
        "Egress spike": things("egress"),
        "Authorization failure burst": things("auth_burst"),
        "CA or device certificate expiring": things("cert_expiring"),
    }


@functools.lru_cache(maxsize=1)
def simulate() -> behaviour.Outcome:
    w = world()
    searches = behaviour.searches_of()
    plan = scheduler.ordered(searches, SCHEDULE[0], SCHEDULE[1])
    macros = dict(model.macros())
    macros["iot_defender_baseline_min_points"] = ("1", [])
    return behaviour.simulate_on(w, plan, LIVE[0], macros=macros)


def table() -> List[Tuple[str, int, int, int, List[str], List[str]]]:
    return behaviour.score(simulate(), truth())
