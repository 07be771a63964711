"""Deterministic fleet simulator: things, certificates, Device Defender metrics, violations and audits.

``Fleet(seed=7, things=50, days=3)`` builds the ground truth in memory (same seed + same ``now`` -> identical
output, see :meth:`Fleet.digest`); :meth:`Fleet.install` puts it behind a :class:`LoopbackAWS`: registry data
into moto through boto3 calls, Device Defender and Incident Manager data into the emulator's state.

Model of the fleet
- things ``<kind>-<NNN>`` (kind in pump-station, valve-controller, flow-meter, rtu-gateway) with a thing type
  per kind and attributes ``site`` (line-a/b/c), ``owner``, ``model``; static groups ``sites`` > ``line-a``,
  ``line-b``, ``line-c`` and ``protected-critical``;
- one X.509 certificate per thing (Ed25519, deterministic; id = SHA-256 of the DER, as AWS IoT computes it), a few
  INACTIVE / REVOKED, a few expiring, a few revoked by the issuing CA while still ACTIVE;
- per-thing metrics every 5 minutes, computed on demand (never stored): listening TCP/UDP ports, destination
  /32 CIDRs, bytes/packets out, authorization failures, messages sent, source IP;
- ``compromised`` things: from their compromise start they listen on 21 or 23, send 10-50x the bytes and talk to
  a new destination (203.0.113.0/24); the ``DeviceRuleBaseline`` profile alarms on all three;
- background violation episodes (auth failures, messages-sent p99, unexpected UDP port, ML bytes/auth) over the
  whole window: in-alarm -> alarm-cleared, some alarm-invalidated, the unfinished ones are active violations;
  a fraction arrives late (``visible_at`` after the event time);
- daily scheduled audits ``DailyDeviceAudit`` at 03:00 UTC, one completed on-demand audit and one still
  IN_PROGRESS, with per-check details and findings for the real check names.
"""

from __future__ import annotations

import bisect
import copy
import datetime as _dt
import hashlib
import json
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

SLOT = 300  # seconds between metric datapoints
DAY = 86400

KINDS = ("pump-station", "valve-controller", "flow-meter", "rtu-gateway")
THING_TYPES = {
    "pump-station": "PumpStation",
    "valve-controller": "ValveController",
    "flow-meter": "FlowMeter",
    "rtu-gateway": "RtuGateway",
}
MODELS = {
    "pump-station": ("PS-200", "PS-300"),
    "valve-controller": ("VC-10", "VC-12"),
    "flow-meter": ("FM-7",),
    "rtu-gateway": ("RTU-5", "RTU-6"),
}
SITES = ("line-a", "line-b", "line-c")
OWNERS = ("ot-team-north", "ot-team-south", "ot-team-east")
PROTECTED_GROUP = "protected-critical"
SITES_GROUP = "sites"

ALLOWED_TCP = (22, 443, 8883)
ALLOWED_UDP = (53, 123)
ALLOWED_CIDRS = ("10.20.0.0/16", "192.0.2.0/24")
EGRESS_THRESHOLD = 150_000

RULE_PROFILE = "DeviceRuleBaseline"
ML_PROFILE = "DeviceMLBaseline"


def rule_behavior(name: str, metric: str, operator: str, value: dict, duration_seconds: int = 0) -> dict:
    """A rule-based Detect behavior that alarms on the first datapoint and clears on the first good one."""
    criteria = {"comparisonOperator": operator, "value": value}
    if duration_seconds:
        criteria["durationSeconds"] = duration_seconds
    criteria.update(consecutiveDatapointsToAlarm=1, consecutiveDatapointsToClear=1)
    return {"name": name, "metric": metric, "criteria": criteria}


BEHAVIOR_TCP = rule_behavior(
    "AuthorizedTcpPorts", "aws:listening-tcp-ports", "in-port-set", {"ports": list(ALLOWED_TCP)}
)
BEHAVIOR_UDP = rule_behavior(
    "AuthorizedUdpPorts", "aws:listening-udp-ports", "in-port-set", {"ports": list(ALLOWED_UDP)}
)
BEHAVIOR_DEST = rule_behavior(
    "AuthorizedDestinations", "aws:destination-ip-addresses", "in-cidr-set", {"cidrs": list(ALLOWED_CIDRS)}
)
BEHAVIOR_EGRESS = rule_behavior(
    "EgressBytes", "aws:all-bytes-out", "greater-than", {"count": EGRESS_THRESHOLD}, duration_seconds=300
)
BEHAVIOR_AUTH = rule_behavior(
    "AuthFailures", "aws:num-authorization-failures", "greater-than", {"count": 5}, duration_seconds=300
)
BEHAVIOR_MSGS = {
    "name": "MessagesSentP99",
    "metric": "aws:num-messages-sent",
    "criteria": {
        "comparisonOperator": "greater-than",
        "statisticalThreshold": {"statistic": "p99"},
        "durationSeconds": 300,
        "consecutiveDatapointsToAlarm": 2,
        "consecutiveDatapointsToClear": 2,
    },
    "suppressAlerts": True,
}
BEHAVIOR_ML_BYTES = {
    "name": "MLBytesOut",
    "metric": "aws:all-bytes-out",
    "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"}},
}
BEHAVIOR_ML_AUTH = {
    "name": "MLAuthFailures",
    "metric": "aws:num-authorization-failures",
    "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}},
}
RULE_BEHAVIORS = (BEHAVIOR_TCP, BEHAVIOR_UDP, BEHAVIOR_DEST, BEHAVIOR_EGRESS, BEHAVIOR_AUTH, BEHAVIOR_MSGS)
ML_BEHAVIORS = (BEHAVIOR_ML_BYTES, BEHAVIOR_ML_AUTH)

# background episodes: (behavior, profile, weight)
_NOISE = (
    (BEHAVIOR_AUTH, RULE_PROFILE, 40),
    (BEHAVIOR_MSGS, RULE_PROFILE, 25),
    (BEHAVIOR_UDP, RULE_PROFILE, 8),
    (BEHAVIOR_ML_BYTES, ML_PROFILE, 15),
    (BEHAVIOR_ML_AUTH, ML_PROFILE, 12),
)

METRIC_NAMES = (
    "aws:num-listening-tcp-ports",
    "aws:listening-tcp-ports",
    "aws:num-listening-udp-ports",
    "aws:listening-udp-ports",
    "aws:destination-ip-addresses",
    "aws:all-bytes-out",
    "aws:all-packets-out",
    "aws:num-authorization-failures",
    "aws:source-ip-address",
    "aws:num-messages-sent",
)

SCHEDULED_AUDIT = "DailyDeviceAudit"
SCHEDULED_CHECKS = (
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "CONFLICTING_CLIENT_IDS_CHECK",
    "DEVICE_CERTIFICATE_SHARED_CHECK",
    "LOGGING_DISABLED_CHECK",
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK",
)
ON_DEMAND_CHECKS = ("DEVICE_CERTIFICATE_EXPIRING_CHECK", "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK")
RESPONSE_PLAN = "iot-device-compromise"

DEVICE_POLICY = "DeviceTelemetryPolicy"
OVERLY_PERMISSIVE_POLICY = "LegacyWildcardPolicy"
SUPPRESSED_POLICY = "LabBenchPolicy"


_MASK64 = (1 << 64) - 1


def _mix(x: int, i: int) -> float:
    """splitmix64 of (x, i) as a float in [0, 1): a fast, seedable, order-free per-slot random number."""
    z = (x + i * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) / 18446744073709551616.0


def _utc(epoch: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)


def _hex(*parts: Any, n: int = 32) -> str:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:n]


@dataclass
class Certificate:
    certificate_id: str
    arn: str
    pem: str
    status: str  # ACTIVE | INACTIVE | REVOKED
    not_before: float
    not_after: float
    revoked_by_ca: bool = False


@dataclass
class Compromise:
    thing_name: str
    start: float  # epoch, slot aligned
    end: Optional[float]  # epoch (slot aligned) or None = still ongoing
    port: int  # 21 or 23
    egress_factor: int  # 10..50
    new_cidr: str  # 203.0.113.x/32

    def active_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass
class Plant:
    """One planted compromise or audit regression (behaviour tests of the detections).

    Device-side kinds change the thing's metrics while active: ``port`` (listens on TCP ``value``), ``egress``
    (bytes and packets times ``value``), ``dest`` (talks to CIDR ``value``), ``auth_burst`` (``value`` more
    authorization failures per datapoint). Audit kinds change the audits that start while active: ``revoked_cert``
    (the thing's certificate revoked by its CA, still ACTIVE), ``cert_shared`` (its certificate used by a clone),
    ``client_id_conflict`` (its client id used twice), ``permissive_policy`` (policy ``value`` allows iot:*),
    ``logging_disabled`` (AWS IoT logging off; the account is compliant before ``start``), ``cert_expiring`` (its
    certificate expires in 20 days), ``key_quality`` (its certificate has a weak key). ``stuck_violation`` adds a
    Detect violation in alarm from ``start`` on that nobody triages."""

    kind: str
    thing_name: str
    start: float
    end: Optional[float] = None
    value: Any = None

    def active_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass
class Episode:
    thing_name: str
    behavior: Dict[str, Any]
    profile: str
    start: float  # first alarming slot
    end: Optional[float]  # first normal slot (None: still alarming)
    violation_id: str
    terminal: Optional[str] = None  # alarm-cleared | alarm-invalidated | None (active)

    def active_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass
class Thing:
    index: int
    name: str
    kind: str
    thing_type: str
    attributes: Dict[str, str]
    groups: List[str]
    certificate: Certificate
    tcp_ports: Tuple[int, ...]
    udp_ports: Tuple[int, ...]
    dest_cidrs: Tuple[str, ...]
    bytes_mean: int
    msgs_mean: int
    source_ip: str
    compromise: Optional[Compromise] = None
    episodes: List[Episode] = field(default_factory=list)
    _episode_starts: List[float] = field(default_factory=list, repr=False)

    @property
    def arn_suffix(self) -> str:
        return f"thing/{self.name}"


class Fleet:
    """A seeded, simulated fleet. See the module docstring for what it contains."""

    def __init__(
        self,
        seed: int = 7,
        things: int = 50,
        days: int = 3,
        now: Optional[_dt.datetime] = None,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        compromised: int = 3,
        plants: Iterable[Plant] = (),
        noise: Optional[Iterable[str]] = None,
        ml_profile: bool = True,
        episodes_per_thing_day: float = 0.5,
        violation_events: Optional[int] = None,
        late_fraction: float = 0.02,
        late_max_seconds: int = 900,
    ):
        if now is None:
            now = _dt.datetime.now(_dt.timezone.utc).replace(second=0, microsecond=0)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=_dt.timezone.utc)
        self.seed = seed
        self.n_things = things
        self.days = days
        self.now = now
        self.now_epoch = now.timestamp()
        self.start_epoch = self.now_epoch - days * DAY
        self.account_id = account_id
        self.region = region
        self.ml_profile = ml_profile
        self.episodes_per_thing_day = episodes_per_thing_day
        self.target_violation_events = violation_events
        self.late_fraction = late_fraction
        self.late_max_seconds = late_max_seconds
        self.n_compromised = max(0, min(compromised, things))
        self.plants: List[Plant] = list(plants)
        self.noise = None if noise is None else set(noise)
        self._seed_int = int(_hex("fleet", seed, n=15), 16)
        self._rng = random.Random(f"fleet/{seed}")
        self.things: List[Thing] = []
        self.thing_by_name: Dict[str, Thing] = {}
        self.compromises: List[Compromise] = []
        self.episodes: List[Episode] = []
        self._events: List[Tuple[Dict[str, Any], Optional[float]]] = []  # (event, visible_at epoch)
        self.active_violations: List[Dict[str, Any]] = []
        self.audit_tasks: List[Dict[str, Any]] = []
        self.findings: List[Dict[str, Any]] = []
        self.groups: Dict[str, Optional[str]] = {SITES_GROUP: None, PROTECTED_GROUP: None}
        for s in SITES:
            self.groups[s] = SITES_GROUP
        self._build_things()
        self._build_compromises()
        self._build_episodes()
        self._build_events()
        self._build_audits()

    # ------------------------------------------------------------------ construction
    @classmethod
    def violation_volume(cls, n_events: int, seed: int = 7, things: int = 2000, days: int = 30, **kw) -> Fleet:
        """A fleet with at least ``n_events`` violation events (for benchmarks)."""
        return cls(seed=seed, things=things, days=days, violation_events=n_events, **kw)

    def _build_things(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.x509.oid import NameOID

        rng = self._rng
        ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"ca/{self.seed}".encode()).digest())
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Loopback Water Utility"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Loopback Device CA"),
            ]
        )
        n = self.n_things
        protected = set(rng.sample(range(1, n + 1), max(1, n // 10))) if n else set()
        special = list(range(1, n + 1))
        rng.shuffle(special)
        # a few certificates in special states (deterministic picks)
        inactive = set(special[: max(1, n // 25)]) if n >= 10 else set()
        revoked = set(special[len(inactive) : len(inactive) + max(1, n // 50)]) if n >= 10 else set()
        ca_revoked = set(special[len(inactive) + len(revoked) : len(inactive) + len(revoked) + max(1, n // 50)])
        if n < 10:
            ca_revoked = set()
        expiring = set(special[-max(1, n // 16) :]) if n >= 4 else set()
        for i in range(1, n + 1):
            kind = KINDS[(i - 1) % len(KINDS)]
            name = f"{kind}-{i:03d}"
            site = SITES[rng.randrange(len(SITES))]
            attrs = {
                "site": site,
                "owner": OWNERS[rng.randrange(len(OWNERS))],
                "model": MODELS[kind][rng.randrange(len(MODELS[kind]))],
            }
            groups = [site] + ([PROTECTED_GROUP] if i in protected else [])
            issued = self.start_epoch - rng.randint(30, 700) * DAY
            if i in expiring:
                not_after = self.now_epoch + rng.randint(-3 * DAY, 40 * DAY)
            else:
                not_after = issued + 5 * 365 * DAY
            status = "INACTIVE" if i in inactive else "REVOKED" if i in revoked else "ACTIVE"
            key = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(rng.getrandbits(120) + 1)
                .not_valid_before(_utc(issued))
                .not_valid_after(_utc(not_after))
                .sign(ca_key, None)
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            cert_id = hashlib.sha256(der).hexdigest()
            certificate = Certificate(
                certificate_id=cert_id,
                arn=f"arn:aws:iot:{self.region}:{self.account_id}:cert/{cert_id}",
                pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                status=status,
                not_before=issued,
                not_after=not_after,
                revoked_by_ca=i in ca_revoked and status == "ACTIVE",
            )
            tcp = tuple(sorted([*rng.sample(ALLOWED_TCP[:2], rng.randint(1, 2)), 8883]))
            udp = (123,) if rng.random() < 0.6 else (53, 123)
            dests = ["10.20.0.10/32"] + [f"192.0.2.{rng.randint(10, 250)}/32" for _ in range(rng.randint(1, 2))]
            thing = Thing(
                index=i,
                name=name,
                kind=kind,
                thing_type=THING_TYPES[kind],
                attributes=attrs,
                groups=groups,
                certificate=certificate,
                tcp_ports=tcp,
                udp_ports=udp,
                dest_cidrs=tuple(sorted(set(dests))),
                bytes_mean=rng.randint(20_000, 80_000),
                msgs_mean=rng.randint(5, 30),
                source_ip=f"198.18.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            )
            self.things.append(thing)
            self.thing_by_name[name] = thing

    def _slot_floor(self, t: float) -> float:
        return math.floor(t / SLOT) * SLOT

    def _slot_ceil(self, t: float) -> float:
        return math.ceil(t / SLOT) * SLOT

    def _build_compromises(self) -> None:
        rng = random.Random(f"fleet/{self.seed}/compromise")
        n = self.n_compromised
        victims = rng.sample(self.things, n) if n else []
        span = self.now_epoch - self.start_epoch
        for k, th in enumerate(victims):
            lo = self.start_epoch + 0.2 * span
            hi = max(lo, self.now_epoch - 2 * 3600)
            start = self._slot_ceil(rng.uniform(lo, hi))
            end: Optional[float] = None
            if k % 2 == 1:  # every other one was cleaned up
                end = min(start + rng.randint(2, 24) * SLOT, self._slot_floor(self.now_epoch) - SLOT)
                if end <= start:
                    end = None
            c = Compromise(
                thing_name=th.name,
                start=start,
                end=end,
                port=rng.choice((21, 23)),
                egress_factor=rng.randint(10, 50),
                new_cidr=f"203.0.113.{rng.randint(1, 254)}/32",
            )
            th.compromise = c
            self.compromises.append(c)

    def _build_episodes(self) -> None:
        rng = random.Random(f"fleet/{self.seed}/episodes")
        kept = [n for n in _NOISE if (self.ml_profile or n[1] != ML_PROFILE)]
        kept = [n for n in kept if self.noise is None or n[0]["name"] in self.noise]
        weights = [w for _, p, w in kept]
        choices = [(b, p) for b, p, _ in kept]
        cum = []
        acc = 0
        for w in weights:
            acc += w
            cum.append(acc)
        first_slot = self._slot_ceil(self.start_epoch)
        last_slot = self._slot_floor(self.now_epoch)
        n_slots = int((last_slot - first_slot) // SLOT)
        if not self.things or n_slots <= 0 or not choices:
            return
        target = self.target_violation_events
        expected = round(self.episodes_per_thing_day * self.n_things * self.days)
        produced_events = 0
        count = 0
        while True:
            if target is not None:
                if produced_events >= target:
                    break
            elif count >= expected:
                break
            th = self.things[rng.randrange(len(self.things))]
            behavior, profile = choices[bisect.bisect_right(cum, rng.randrange(acc))]
            start = first_slot + rng.randrange(n_slots) * SLOT
            roll = rng.random()
            if roll < 0.03:
                end = None  # stuck in alarm
            else:
                end = start + rng.randint(1, 12) * SLOT
                if end > last_slot - SLOT:  # keep the closing event (end + <=90 s) before ``now``
                    end = None
            terminal = None
            if end is not None:
                terminal = "alarm-invalidated" if rng.random() < 0.1 else "alarm-cleared"
            ep = Episode(
                thing_name=th.name,
                behavior=behavior,
                profile=profile,
                start=start,
                end=end,
                violation_id=_hex("violation", self.seed, count),
                terminal=terminal,
            )
            th.episodes.append(ep)
            self.episodes.append(ep)
            count += 1
            produced_events += 1 if end is None else 2
        for th in self.things:
            th.episodes.sort(key=lambda e: (e.start, e.violation_id))
            th._episode_starts = [e.start for e in th.episodes]

    # ------------------------------------------------------------------ metrics
    def _slot_key(self, thing: Thing, t: float) -> int:
        return ((self._seed_int * 1_000_003 + thing.index) * 1_000_003 + int(t // SLOT)) & _MASK64

    def metrics_at(self, thing_name: str, t: float) -> Dict[str, Dict[str, Any]]:
        """Metric values of ``thing_name`` at slot time ``t`` (epoch seconds), keyed by metric name."""
        th = self.thing_by_name[thing_name]
        t = self._slot_floor(t)
        x = self._slot_key(th, t)
        tcp = list(th.tcp_ports)
        udp = list(th.udp_ports)
        cidrs = list(th.dest_cidrs)
        bytes_out = int(th.bytes_mean * (0.7 + 0.6 * _mix(x, 1)))
        packets = max(1, bytes_out // (120 + int(61 * _mix(x, 2))))
        msgs = max(0, int(th.msgs_mean * (0.6 + 0.8 * _mix(x, 3))))
        auth_failures = 1 if _mix(x, 4) < 0.02 else 0
        c = th.compromise
        if c is not None and c.start <= t and (c.end is None or t < c.end):
            tcp = sorted(set(tcp) | {c.port})
            bytes_out *= c.egress_factor
            packets *= c.egress_factor
            cidrs = sorted(set(cidrs) | {c.new_cidr})
            auth_failures += int(4 * _mix(x, 5))
        for p in self.plants:
            if p.thing_name == thing_name and p.active_at(t):
                if p.kind == "port":
                    tcp = sorted(set(tcp) | {int(p.value)})
                elif p.kind == "egress":
                    bytes_out *= int(p.value)
                    packets *= int(p.value)
                elif p.kind == "dest":
                    cidrs = sorted(set(cidrs) | {p.value})
                elif p.kind == "auth_burst":
                    auth_failures += int(p.value)
        eps = th.episodes
        if eps:
            starts = th._episode_starts
            for i in range(bisect.bisect_right(starts, t)):
                ep = eps[i]
                if ep.end is not None and t >= ep.end:
                    continue
                name = ep.behavior["name"]
                if name == "AuthFailures":
                    auth_failures = 6 + int(15 * _mix(x, 6))
                elif name == "MessagesSentP99":
                    msgs = msgs * 8 + 40
                elif name == "AuthorizedUdpPorts":
                    udp = sorted(set(udp) | {69})
                elif name == "MLBytesOut":
                    bytes_out = int(bytes_out * 1.4)
                elif name == "MLAuthFailures":
                    auth_failures = max(auth_failures, 3 + int(3 * _mix(x, 7)))
        return {
            "aws:num-listening-tcp-ports": {"count": len(tcp)},
            "aws:listening-tcp-ports": {"ports": tcp},
            "aws:num-listening-udp-ports": {"count": len(udp)},
            "aws:listening-udp-ports": {"ports": udp},
            "aws:destination-ip-addresses": {"cidrs": cidrs},
            "aws:all-bytes-out": {"count": bytes_out},
            "aws:all-packets-out": {"count": packets},
            "aws:num-authorization-failures": {"count": auth_failures},
            "aws:source-ip-address": {"strings": [th.source_ip]},
            "aws:num-messages-sent": {"count": msgs},
        }

    def slots(self, start: Optional[float] = None, end: Optional[float] = None) -> List[float]:
        """Slot times (epoch) within [start, end] and within the fleet window."""
        lo = self._slot_ceil(max(self.start_epoch, start if start is not None else self.start_epoch))
        hi = self._slot_floor(min(self.now_epoch, end if end is not None else self.now_epoch))
        if hi < lo:
            return []
        return [lo + k * SLOT for k in range(int((hi - lo) // SLOT) + 1)]

    def metric_series(
        self, thing_name: str, metric_name: str, start: Optional[float] = None, end: Optional[float] = None
    ) -> List[Tuple[float, Dict[str, Any]]]:
        return [(t, self.metrics_at(thing_name, t)[metric_name]) for t in self.slots(start, end)]

    def _metric_source(self, thing_name: str, metric_name: str, start: float, end: float):
        if thing_name not in self.thing_by_name or metric_name not in METRIC_NAMES:
            return []
        return self.metric_series(thing_name, metric_name, start, end)

    def iter_metrics_export_messages(
        self,
        start: Optional[Any] = None,
        end: Optional[Any] = None,
        things: Optional[Iterable[str]] = None,
    ) -> Iterator[Dict[str, Any]]:
        """One metrics-export message per thing and slot (shape of samples/metrics-export.json, epoch ms)."""
        s = _epoch(start) if start is not None else self.now_epoch - 3600
        e = _epoch(end) if end is not None else self.now_epoch
        names = list(things) if things is not None else [t.name for t in self.things]
        for t in self.slots(s, e):
            ts = int(t * 1000)
            for name in names:
                values = self.metrics_at(name, t)
                metrics = [
                    {"name": m, "thing": name, "value": values[m], "version": 1, "timestamp": ts}
                    for m in METRIC_NAMES
                    if m != "aws:num-messages-sent"
                ]
                metrics.append(
                    {
                        "name": "aws:num-messages-sent",
                        "thing": name,
                        "value": values["aws:num-messages-sent"],
                        "version": 1,
                        "timestamp": ts,
                        "dimension": {"name": "TopicFilterForTelemetry", "operator": "IN"},
                    }
                )
                yield {"version": "1.0", "metrics": metrics}

    def metrics_export_messages(self, start=None, end=None, things=None) -> List[Dict[str, Any]]:
        """List form of :meth:`iter_metrics_export_messages` (default window: the last hour before ``now``)."""
        return list(self.iter_metrics_export_messages(start, end, things))

    # ------------------------------------------------------------------ violations
    def _event(self, ep_thing: str, behavior, profile, vid, etype, t, value, extra=None) -> Dict[str, Any]:
        ev: Dict[str, Any] = {
            "violationId": vid,
            "thingName": ep_thing,
            "securityProfileName": profile,
            "behavior": behavior,
            "violationEventType": etype,
            "violationEventTime": _utc(t),
        }
        if value is not None:
            ev["metricValue"] = value
        if extra:
            ev.update(extra)
        return ev

    def _value_for(self, behavior: Dict[str, Any], thing: str, t: float) -> Dict[str, Any]:
        value = self.metrics_at(thing, t)[behavior["metric"]]
        return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}

    def _build_events(self) -> None:
        rng = random.Random(f"fleet/{self.seed}/events")
        events: List[Tuple[Dict[str, Any], Optional[float]]] = []
        active: List[Dict[str, Any]] = []

        def add_episode(thing, behavior, profile, vid, start, end, terminal, extra=None):
            t0 = start + rng.randint(5, 90)
            late = rng.random() < self.late_fraction
            vis0 = t0 + rng.randint(60, self.late_max_seconds) if late else None
            v0 = self._value_for(behavior, thing, start)
            events.append((self._event(thing, behavior, profile, vid, "in-alarm", t0, v0, extra), vis0))
            if end is not None:
                t1 = end + rng.randint(5, 90)
                if terminal == "alarm-invalidated":
                    ev = self._event(thing, behavior, profile, vid, terminal, t1, None, extra)
                else:
                    ev = self._event(
                        thing, behavior, profile, vid, terminal, t1, self._value_for(behavior, thing, end), extra
                    )
                events.append((ev, None))
            else:
                last = self._slot_floor(self.now_epoch)
                av: Dict[str, Any] = {
                    "violationId": vid,
                    "thingName": thing,
                    "securityProfileName": profile,
                    "behavior": behavior,
                    "lastViolationValue": self._value_for(behavior, thing, last),
                    "lastViolationTime": _utc(max(last, t0)),
                    "violationStartTime": _utc(t0),
                }
                if extra:
                    av.update(extra)
                active.append(av)

        for c in self.compromises:
            for behavior in (BEHAVIOR_TCP, BEHAVIOR_EGRESS, BEHAVIOR_DEST):
                vid = _hex("compromise", self.seed, c.thing_name, behavior["name"])
                start = c.start + (SLOT if behavior is BEHAVIOR_EGRESS else 0)
                end = c.end
                if end is not None and end <= start:
                    end = start + SLOT
                add_episode(c.thing_name, behavior, RULE_PROFILE, vid, start, end, "alarm-cleared" if end else None)
        for p in self.plants:
            if p.kind == "stuck_violation":  # in alarm from ``start`` on, never triaged
                vid = _hex("planted", self.seed, p.thing_name, int(p.start))
                add_episode(p.thing_name, BEHAVIOR_AUTH, RULE_PROFILE, vid, self._slot_ceil(p.start), None, None)
        for ep in self.episodes:
            extra = None
            if "mlDetectionConfig" in ep.behavior["criteria"]:
                extra = {
                    "violationEventAdditionalInfo": {
                        "confidenceLevel": ep.behavior["criteria"]["mlDetectionConfig"]["confidenceLevel"]
                    }
                }
            add_episode(ep.thing_name, ep.behavior, ep.profile, ep.violation_id, ep.start, ep.end, ep.terminal, extra)
        # a few triaged active violations
        for av in active:
            if av["behavior"]["name"] == "MessagesSentP99" and rng.random() < 0.3:
                av["verificationState"] = "BENIGN_POSITIVE"
                av["verificationStateDescription"] = "firmware update burst"
        events.sort(key=lambda p: (p[0]["violationEventTime"], p[0]["violationId"], p[0]["violationEventType"]))
        # the two newest in-alarm events are still in flight at ``now``: visible 2 and 7 minutes later
        tail = [i for i in range(len(events) - 1, -1, -1) if events[i][0]["violationEventType"] == "in-alarm"][:2]
        for k, i in enumerate(tail):
            ev, vis = events[i]
            events[i] = (ev, max(vis or 0.0, self.now_epoch + 120 + 300 * k))
        active.sort(key=lambda v: (v["violationStartTime"], v["violationId"]))
        self._events = events
        self.active_violations = active

    @property
    def violation_events(self) -> List[Dict[str, Any]]:
        """Every violation event (API shape; datetimes in UTC), ordered by time."""
        return [e for e, _ in self._events]

    def active_violations_at(self, at: Any) -> List[Dict[str, Any]]:
        """ListActiveViolations as it would answer at ``at``: violations whose in-alarm event happened by then and
        whose closing event had not (verification states as the fleet's final active list carries them)."""
        t = _epoch(at)
        verdicts = {av["violationId"]: av for av in self.active_violations if "verificationState" in av}
        opened: Dict[str, Dict[str, Any]] = {}
        for e, _vis in self._events:
            if e["violationEventTime"].timestamp() > t:
                continue
            if e["violationEventType"] == "in-alarm":
                opened[e["violationId"]] = e
            else:
                opened.pop(e["violationId"], None)
        out = []
        for vid, e in sorted(opened.items(), key=lambda kv: (kv[1]["violationEventTime"], kv[0])):
            av: Dict[str, Any] = {
                "violationId": vid,
                "thingName": e["thingName"],
                "securityProfileName": e["securityProfileName"],
                "behavior": e["behavior"],
                "lastViolationValue": e.get("metricValue", {}),
                "lastViolationTime": _utc(self._slot_floor(t)),
                "violationStartTime": e["violationEventTime"],
            }
            if "violationEventAdditionalInfo" in e:
                av["violationEventAdditionalInfo"] = e["violationEventAdditionalInfo"]
            if vid in verdicts:
                av["verificationState"] = verdicts[vid]["verificationState"]
            out.append(av)
        return out

    def visible_violation_events(self, at: Optional[Any] = None) -> List[Dict[str, Any]]:
        """The events visible at ``at`` (default: fleet ``now``): late ones appear only after ``visible_at``."""
        t = _epoch(at) if at is not None else self.now_epoch
        return [e for e, vis in self._events if vis is None or vis <= t]

    @property
    def late_events(self) -> List[Tuple[Dict[str, Any], _dt.datetime]]:
        return [(e, _utc(v)) for e, v in self._events if v is not None]

    @property
    def compromised_things(self) -> List[str]:
        return [c.thing_name for c in self.compromises]

    # ------------------------------------------------------------------ audits
    def _build_audits(self) -> None:
        rng = random.Random(f"fleet/{self.seed}/audit")
        tasks: List[Dict[str, Any]] = []
        findings: List[Dict[str, Any]] = []
        first_day = _dt.datetime.fromtimestamp(self.start_epoch, _dt.timezone.utc).replace(
            hour=3, minute=0, second=0, microsecond=0
        )
        day_starts = []
        d = first_day
        while d.timestamp() <= self.now_epoch:
            if d.timestamp() >= self.start_epoch:
                day_starts.append(d.timestamp())
            d += _dt.timedelta(days=1)
        failed_logging_day = day_starts[len(day_starts) // 2] if day_starts else None
        shared_cert_thing = self.things[rng.randrange(len(self.things))] if self.things else None
        for ts in day_starts:
            task_id = _hex("audit", self.seed, int(ts))
            details, fs = self._run_checks(
                task_id, ts, SCHEDULED_CHECKS, rng, ts == failed_logging_day, shared_cert_thing
            )
            tasks.append(
                {
                    "taskId": task_id,
                    "taskStatus": "COMPLETED",
                    "taskType": "SCHEDULED_AUDIT_TASK",
                    "taskStartTime": _utc(ts),
                    "scheduledAuditName": SCHEDULED_AUDIT,
                    "auditDetails": details,
                }
            )
            findings.extend(fs)
        if self.days >= 1 and self.things:
            ts = self._slot_floor(self.start_epoch + (self.now_epoch - self.start_epoch) / 2) + 17 * 60
            task_id = _hex("audit-on-demand", self.seed, int(ts))
            details, fs = self._run_checks(task_id, ts, ON_DEMAND_CHECKS, rng, False, shared_cert_thing)
            tasks.append(
                {
                    "taskId": task_id,
                    "taskStatus": "COMPLETED",
                    "taskType": "ON_DEMAND_AUDIT_TASK",
                    "taskStartTime": _utc(ts),
                    "auditDetails": details,
                }
            )
            findings.extend(fs)
            # still running: completes 10 minutes after ``now``
            ts = self.now_epoch - 180
            task_id = _hex("audit-in-progress", self.seed, int(ts))
            details, fs = self._run_checks(task_id, ts, ON_DEMAND_CHECKS, rng, False, shared_cert_thing)
            tasks.append(
                {
                    "taskId": task_id,
                    "taskStatus": "IN_PROGRESS",
                    "taskType": "ON_DEMAND_AUDIT_TASK",
                    "taskStartTime": _utc(ts),
                    "auditDetails": {c: {"checkRunStatus": "IN_PROGRESS"} for c in ON_DEMAND_CHECKS},
                    "completes_at": _utc(self.now_epoch + 600),
                    "pending": {"auditDetails": details, "findings": fs},
                }
            )
        tasks.sort(key=lambda t: (t["taskStartTime"], t["taskId"]))
        self.audit_tasks = tasks
        self.findings = sorted(findings, key=lambda f: (f["findingTime"], f["findingId"]))

    def _run_checks(self, task_id, ts, checks, rng, logging_fails, shared_cert_thing):
        details: Dict[str, Dict[str, Any]] = {}
        findings: List[Dict[str, Any]] = []
        finding_time = ts + 240 + rng.randint(0, 300)
        acct = self.account_id
        n_certs = len(self.things)

        def finding(
            check, severity, resource_type, identifier, reason, code, suppressed=False, related=None, info=None
        ):
            rid = json.dumps(identifier, sort_keys=True)
            f: Dict[str, Any] = {
                "findingId": _hex("finding", task_id, check, rid),
                "taskId": task_id,
                "checkName": check,
                "taskStartTime": _utc(ts),
                "findingTime": _utc(finding_time),
                "severity": severity,
                "nonCompliantResource": {"resourceType": resource_type, "resourceIdentifier": identifier},
                "reasonForNonCompliance": reason,
                "reasonForNonComplianceCode": code,
                "isSuppressed": suppressed,
            }
            if info:
                f["nonCompliantResource"]["additionalInfo"] = info
            if related:
                f["relatedResources"] = related
            return f

        for check in checks:
            fs: List[Dict[str, Any]] = []
            total = n_certs
            if check == "DEVICE_CERTIFICATE_EXPIRING_CHECK":
                for th in self.things:
                    c = th.certificate
                    if c.status == "ACTIVE" and c.not_after - ts < 30 * DAY:
                        expired = c.not_after <= ts
                        fs.append(
                            finding(
                                check,
                                "MEDIUM",
                                "DEVICE_CERTIFICATE",
                                {"deviceCertificateId": c.certificate_id, "deviceCertificateArn": c.arn},
                                "Certificate has expired" if expired else "Certificate is expiring",
                                "CERTIFICATE_EXPIRED" if expired else "CERTIFICATE_EXPIRING",
                                info={"EXPIRATION_TIME": _utc(c.not_after).strftime("%Y-%m-%dT%H:%M:%SZ")},
                            )
                        )
            elif check == "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK":
                for th in self.things:
                    c = th.certificate
                    if c.revoked_by_ca:
                        fs.append(
                            finding(
                                check,
                                "MEDIUM",
                                "DEVICE_CERTIFICATE",
                                {"deviceCertificateId": c.certificate_id, "deviceCertificateArn": c.arn},
                                "Certificate was revoked by its issuer but is still active",
                                "CERTIFICATE_REVOKED_BY_ISSUER",
                            )
                        )
            elif check == "IOT_POLICY_OVERLY_PERMISSIVE_CHECK":
                total = 3
                fs.append(
                    finding(
                        check,
                        "CRITICAL",
                        "IOT_POLICY",
                        {"policyVersionIdentifier": {"policyName": OVERLY_PERMISSIVE_POLICY, "policyVersionId": "1"}},
                        "Policy allows broad access to IoT data plane actions",
                        "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
                    )
                )
                fs.append(
                    finding(
                        check,
                        "CRITICAL",
                        "IOT_POLICY",
                        {"policyVersionIdentifier": {"policyName": SUPPRESSED_POLICY, "policyVersionId": "2"}},
                        "Policy allows broad access to IoT data plane actions",
                        "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
                        suppressed=True,
                    )
                )
            elif check == "CONFLICTING_CLIENT_IDS_CHECK":
                for c in self.compromises:
                    if c.active_at(ts) or (c.start <= ts + DAY and (c.end is None or c.end > ts)):
                        fs.append(
                            finding(
                                check,
                                "HIGH",
                                "CLIENT_ID",
                                {"clientId": c.thing_name},
                                "Multiple connected devices use the same client ID",
                                "DUPLICATE_CLIENT_ID_ACROSS_CONNECTIONS",
                            )
                        )
            elif check == "DEVICE_CERTIFICATE_SHARED_CHECK" and shared_cert_thing is not None:
                c = shared_cert_thing.certificate
                other = f"{shared_cert_thing.name}-clone"
                conn = _utc(ts - 3600).strftime("%Y-%m-%dT%H:%M:%SZ")
                fs.append(
                    finding(
                        check,
                        "CRITICAL",
                        "DEVICE_CERTIFICATE",
                        {"deviceCertificateId": c.certificate_id, "deviceCertificateArn": c.arn},
                        "Certificate shared by multiple devices",
                        "CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES",
                        related=[
                            {
                                "resourceType": "CLIENT_ID",
                                "resourceIdentifier": {"clientId": shared_cert_thing.name},
                                "additionalInfo": {"CONNECTION_TIME": conn},
                            },
                            {
                                "resourceType": "CLIENT_ID",
                                "resourceIdentifier": {"clientId": other},
                                "additionalInfo": {"CONNECTION_TIME": conn},
                            },
                        ],
                    )
                )
            elif check == "LOGGING_DISABLED_CHECK":
                total = 1
                if logging_fails:
                    details[check] = {
                        "checkRunStatus": "FAILED",
                        "errorCode": "INSUFFICIENT_PERMISSIONS",
                        "message": "The audit role is not authorized to perform iot:GetV2LoggingOptions.",
                    }
                    continue
                if not any(p.kind == "logging_disabled" for p in self.plants):
                    fs.append(
                        finding(
                            check,
                            "LOW",
                            "ACCOUNT_SETTINGS",
                            {"account": acct},
                            "AWS IoT logging is disabled",
                            "LOGGING_DISABLED",
                        )
                    )
            elif check == "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK":
                total = 0
            elif check == "CA_CERTIFICATE_EXPIRING_CHECK":
                total = 1
            fs.extend(self._planted_findings(check, ts, finding))
            suppressed = sum(1 for f in fs if f["isSuppressed"])
            details[check] = {
                "checkRunStatus": "COMPLETED_NON_COMPLIANT" if fs else "COMPLETED_COMPLIANT",
                "checkCompliant": not fs,
                "totalResourcesCount": max(total, len(fs)),
                "nonCompliantResourcesCount": len(fs),
                "suppressedNonCompliantResourcesCount": suppressed,
            }
            findings.extend(fs)
        return details, findings

    def _planted_findings(self, check: str, ts: float, finding) -> List[Dict[str, Any]]:
        """Findings of the audit-kind plants active when the audit at ``ts`` starts."""
        out: List[Dict[str, Any]] = []
        for p in self.plants:
            if not p.active_at(ts):
                continue
            th = self.thing_by_name.get(p.thing_name)
            cert = th.certificate if th else None
            ident = {"deviceCertificateId": cert.certificate_id, "deviceCertificateArn": cert.arn} if cert else {}
            if p.kind == "revoked_cert" and check == "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK":
                out.append(
                    finding(
                        check,
                        "MEDIUM",
                        "DEVICE_CERTIFICATE",
                        ident,
                        "Certificate was revoked by the issuing CA but is still active",
                        "CERTIFICATE_REVOKED_BY_ISSUER",
                    )
                )
            elif p.kind == "cert_shared" and check == "DEVICE_CERTIFICATE_SHARED_CHECK":
                related = [
                    {"resourceType": "CLIENT_ID", "resourceIdentifier": {"clientId": name}}
                    for name in (p.thing_name, f"{p.thing_name}-clone")
                ]
                out.append(
                    finding(
                        check,
                        "CRITICAL",
                        "DEVICE_CERTIFICATE",
                        ident,
                        "Certificate shared by multiple devices",
                        "CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES",
                        related=related,
                    )
                )
            elif p.kind == "client_id_conflict" and check == "CONFLICTING_CLIENT_IDS_CHECK":
                out.append(
                    finding(
                        check,
                        "HIGH",
                        "CLIENT_ID",
                        {"clientId": p.thing_name},
                        "Multiple connected devices use the same client ID",
                        "DUPLICATE_CLIENT_ID_ACROSS_CONNECTIONS",
                    )
                )
            elif p.kind == "permissive_policy" and check == "IOT_POLICY_OVERLY_PERMISSIVE_CHECK":
                out.append(
                    finding(
                        check,
                        "CRITICAL",
                        "IOT_POLICY",
                        {"policyVersionIdentifier": {"policyName": p.value, "policyVersionId": "1"}},
                        "Policy allows broad access to IoT data plane actions",
                        "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
                    )
                )
            elif p.kind == "cert_expiring" and check == "DEVICE_CERTIFICATE_EXPIRING_CHECK":
                out.append(
                    finding(
                        check,
                        "MEDIUM",
                        "DEVICE_CERTIFICATE",
                        ident,
                        "Certificate is expiring",
                        "CERTIFICATE_EXPIRING",
                        info={"EXPIRATION_TIME": _utc(ts + 20 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")},
                    )
                )
            elif p.kind == "key_quality" and check == "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK":
                out.append(
                    finding(
                        check,
                        "CRITICAL",
                        "DEVICE_CERTIFICATE",
                        ident,
                        "Certificate uses a weak key",
                        "DEVICE_CERTIFICATE_KEY_QUALITY",
                    )
                )
            elif p.kind == "logging_disabled" and check == "LOGGING_DISABLED_CHECK":
                out.append(
                    finding(
                        check,
                        "LOW",
                        "ACCOUNT_SETTINGS",
                        {"account": self.account_id},
                        "AWS IoT logging is disabled",
                        "LOGGING_DISABLED",
                    )
                )
        return out

    # ------------------------------------------------------------------ fingerprint
    def digest(self) -> str:
        """SHA-256 over the whole ground truth (things, certificates, violations, audits, sample metrics)."""
        h = hashlib.sha256()

        def feed(obj: Any) -> None:
            h.update(json.dumps(obj, sort_keys=True, default=_json_default).encode())

        for th in self.things:
            feed(
                [th.name, th.thing_type, th.attributes, th.groups, th.certificate.certificate_id, th.certificate.status]
            )
            feed([th.certificate.pem])
        feed([c.__dict__ for c in self.compromises])
        for e, vis in self._events:
            feed([e, vis])
        feed(self.active_violations)
        feed(self.audit_tasks)
        feed(self.findings)
        for th in self.things[:20]:
            feed(self.metrics_at(th.name, self._slot_floor(self.now_epoch)))
        for c in self.compromises:
            feed(self.metrics_at(c.thing_name, c.start))
        return h.hexdigest()

    # ------------------------------------------------------------------ install
    def security_profiles(self) -> List[Dict[str, Any]]:
        profs = [{"name": RULE_PROFILE, "behaviors": copy.deepcopy(list(RULE_BEHAVIORS))}]
        if self.ml_profile:
            profs.append({"name": ML_PROFILE, "behaviors": copy.deepcopy(list(ML_BEHAVIORS))})
        return profs

    def install(
        self,
        aws,
        registry: Any = "auto",
        registry_limit: Optional[int] = None,
        boto3_things: int = 50,
        defender: bool = True,
        incidents: bool = True,
        workers: int = 4,
    ) -> Dict[str, Any]:
        """Install the fleet into ``aws`` (a started LoopbackAWS). Returns a small summary.

        Registry (moto): thing types, groups, policies (``DeviceTelemetryPolicy`` attached to every site group and
        to the ``protected-critical`` group ARN, plus an overly permissive one) always through boto3 calls to
        ``aws.endpoint_url``; then the things (type, attributes, groups), their certificates (registered without
        CA, with their status) and principals. ``registry``: ``"boto3"`` every thing through boto3 (about 20 ms a
        thing), ``"direct"`` straight into moto's in-process backend (microseconds), ``"auto"`` the first
        ``boto3_things`` through boto3 and the rest direct, ``None``/``False`` no registry. ``registry_limit``
        installs only the first N things plus every compromised and protected one.
        Device Defender and Incident Manager data go straight into the emulator's state.
        """
        summary: Dict[str, Any] = {"registry_things": 0}
        aws.add_account(self.account_id)
        creds = None
        if self.account_id != aws.account_id:
            ak = "AKIA" + _hex("fleet-key", self.account_id, n=16).upper()
            sk = _hex("fleet-secret", self.account_id, n=40)
            aws.add_credentials(ak, sk, self.account_id)
            creds = (ak, sk)
        if defender:
            d = aws.defender
            for p in self.security_profiles():
                d.add_security_profile(p["name"], p["behaviors"], account_id=self.account_id, region=self.region)
            d.add_violation_events(
                ({**e, "visible_at": vis} if vis is not None else e for e, vis in self._events),
                account_id=self.account_id,
                region=self.region,
            )
            d.add_active_violations(self.active_violations, account_id=self.account_id, region=self.region)
            for t in self.audit_tasks:
                task = dict(t)
                if "pending" in task:
                    task["pending"] = copy.deepcopy(task["pending"])
                    task["pending"]["findings"] = [
                        {k: _epoch(v) if k in ("taskStartTime", "findingTime") else v for k, v in f.items()}
                        for f in task["pending"]["findings"]
                    ]
                d.add_audit_task(task, account_id=self.account_id, region=self.region)
            d.add_audit_findings(self.findings, account_id=self.account_id, region=self.region)
            d.set_metric_source(self._metric_source, account_id=self.account_id, region=self.region)
        if incidents:
            self.response_plan_arn = aws.incidents.add_response_plan(
                RESPONSE_PLAN,
                title="IoT device compromise",
                impact=2,
                account_id=self.account_id,
                display_name="IoT device compromise",
                summary="Device Defender detected a likely compromised device.",
            )
            summary["response_plan_arn"] = self.response_plan_arn
        if registry:
            summary["registry_things"] = self._install_registry(
                aws, str(registry), registry_limit, boto3_things, workers, creds
            )
        return summary

    def registry_things(self, limit: Optional[int] = None) -> List[Thing]:
        if limit is None or limit >= len(self.things):
            return list(self.things)
        chosen = {th.name for th in self.things[:limit]}
        chosen |= set(self.compromised_things)
        chosen |= {th.name for th in self.things if PROTECTED_GROUP in th.groups}
        return [th for th in self.things if th.name in chosen]

    def _install_registry(self, aws, mode, limit, boto3_things, workers, creds) -> int:
        import threading

        kwargs: Dict[str, Any] = {"region": self.region}
        if creds:
            kwargs.update(access_key=creds[0], secret_key=creds[1])
        iot = aws.client("iot", **kwargs)
        for kind, tt in THING_TYPES.items():
            iot.create_thing_type(
                thingTypeName=tt,
                thingTypeProperties={
                    "thingTypeDescription": f"{kind} devices",
                    "searchableAttributes": ["site", "owner", "model"],
                },
            )
        for name, parent in self.groups.items():
            if parent is None:
                iot.create_thing_group(thingGroupName=name)
        for name, parent in self.groups.items():
            if parent is not None:
                iot.create_thing_group(thingGroupName=name, parentGroupName=parent)
        doc = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iot:Connect"],
                    "Resource": [
                        f"arn:aws:iot:{self.region}:{self.account_id}:client/${{iot:Connection.Thing.ThingName}}"
                    ],
                },
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish"],
                    "Resource": [f"arn:aws:iot:{self.region}:{self.account_id}:topic/telemetry/${{iot:ClientId}}"],
                },
            ],
        }
        iot.create_policy(policyName=DEVICE_POLICY, policyDocument=json.dumps(doc))
        wildcard = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
        iot.create_policy(policyName=OVERLY_PERMISSIVE_POLICY, policyDocument=json.dumps(wildcard))
        for g in (*SITES, PROTECTED_GROUP):
            arn = iot.describe_thing_group(thingGroupName=g)["thingGroupArn"]
            iot.attach_policy(policyName=DEVICE_POLICY, target=arn)
        todo = self.registry_things(limit)
        if mode == "boto3":
            via_api, direct = todo, []
        elif mode == "direct":
            via_api, direct = [], todo
        else:
            via_api, direct = todo[:boto3_things], todo[boto3_things:]

        local = threading.local()

        def client():
            c = getattr(local, "iot", None)
            if c is None:
                c = local.iot = aws.client("iot", **kwargs)
            return c

        def one(th: Thing) -> None:
            c = client()
            c.create_thing(
                thingName=th.name,
                thingTypeName=th.thing_type,
                attributePayload={"attributes": th.attributes},
            )
            for g in th.groups:
                c.add_thing_to_thing_group(thingGroupName=g, thingName=th.name)
            cert = c.register_certificate_without_ca(certificatePem=th.certificate.pem, status=th.certificate.status)
            if cert["certificateId"] != th.certificate.certificate_id:
                raise AssertionError(
                    f"moto computed certificate id {cert['certificateId']} for {th.name}, expected "
                    f"{th.certificate.certificate_id} (is moto's iot.use_valid_cert on?)"
                )
            c.attach_thing_principal(thingName=th.name, principal=th.certificate.arn)

        if via_api:
            local.iot = iot
            if workers > 1 and len(via_api) > 8:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(one, via_api))
            else:
                for th in via_api:
                    one(th)
        if direct:
            from moto.iot.models import iot_backends

            with aws.moto_state():
                be = iot_backends[self.account_id][self.region]
                for th in direct:
                    be.create_thing(th.name, th.thing_type, {"attributes": dict(th.attributes)})
                    for g in th.groups:
                        be.add_thing_to_thing_group(g, None, th.name, None)
                    cert = be.register_certificate_without_ca(th.certificate.pem, th.certificate.status)
                    if cert.certificate_id != th.certificate.certificate_id:
                        raise AssertionError(f"moto computed certificate id {cert.certificate_id} for {th.name}")
                    be.attach_thing_principal(th.name, th.certificate.arn)
        return len(todo)


def _epoch(v: Any) -> float:
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.timestamp()
    v = float(v)
    return v / 1000.0 if v > 1e11 else v


def _json_default(o: Any) -> Any:
    if isinstance(o, _dt.datetime):
        return o.timestamp()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
