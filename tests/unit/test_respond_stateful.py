"""The response actions as a state machine (hypothesis ``RuleBasedStateMachine``): random sequences of quarantine,
release, manual changes in AWS, record-key rotation, a record copied back, KV-store faults around incidents and a
quarantine racing a release on one thing. After every step:

- nothing the add-on did not create is touched (a customer policy attached to a certificate, a site group with
  a member, the customer policy's versions and targets), and no write call ever names them;
- every certificate and membership is what the model says: a release that reports ``done`` leaves the thing
  exactly as it was before its quarantine (with the humans' own changes since), never more open nor more closed;
  a shared certificate stays closed while any quarantine holds it;
- every outcome matches AWS's final state (a race's loser reports conflict and changed nothing); an SNS
  incident is published at most once per alert, and ``done`` only by the run that published it.

``make test`` runs it with a fixed seed (derandomized); ``make bench`` runs it longer
(``IOT_STATEFUL_EXAMPLES``) and reports the example count.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from typing import Any, Dict, List, Set

import boto3
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from moto import mock_aws

from iot_defender import respond
from iot_defender.respond import RECORD_ATTRIBUTE, IncidentOptions, MemorySuppressionStore, QuarantineOptions
from tests.harness.aws import moto_iot
from tests.unit.test_respond_support import REGION, certificate_pems, make_responder, run_context

THINGS = ["t0", "t1", "t2"]
CERT_OF = {"c0": ["t0", "t1"], "c1": ["t1"], "c2": ["t2"]}  # c0: cloned devices share it
POLICY = respond.DEFAULT_POLICY_NAME
CUSTOMER_POLICY = "CustomerFleet"
ALLOW = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
EXAMPLES = int(os.environ.get("IOT_STATEFUL_EXAMPLES", "12"))
STEPS = int(os.environ.get("IOT_STATEFUL_STEPS", "14"))
RUNS: List[int] = []  # examples run (the bench reports it)


class DownStore(MemorySuppressionStore):
    def get(self, key):
        raise ConnectionError("kvstore down")

    def claim(self, key, value):
        raise ConnectionError("kvstore down")


class Responses(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        RUNS.append(1)
        self.now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
        moto_iot.clock = lambda: self.now
        self.mock = mock_aws()
        self.mock.start()
        self.iot = boto3.client("iot", region_name=REGION)
        self.sns_topic = boto3.client("sns", region_name=REGION).create_topic(Name="alerts")["TopicArn"]
        self.certs: Dict[str, Dict[str, str]] = {}
        self._seed()
        self.keys: List[bytes] = [b"k0" + b"-" * 30]
        self.baseline = {c: "ACTIVE" for c in CERT_OF}  # what humans made of each certificate
        self.quarantined: Set[str] = set()
        self.holds: Dict[str, Set[str]] = {t: set() for t in THINGS}  # certificates a quarantine holds INACTIVE
        self.old_records: Dict[str, str] = {}
        self.writes: List[Any] = []
        self.store = MemorySuppressionStore()
        self.published: Dict[str, int] = {}
        self.customer_before = self._customer_state()

    def _seed(self) -> None:
        for thing in THINGS:
            self.iot.create_thing(thingName=thing)
        pems = iter(certificate_pems())
        for cert, things in CERT_OF.items():
            made = self.iot.register_certificate_without_ca(certificatePem=next(pems), status="ACTIVE")
            self.certs[cert] = {"id": made["certificateId"], "arn": made["certificateArn"]}
            for thing in things:
                self.iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
        self.iot.create_policy(policyName=CUSTOMER_POLICY, policyDocument=ALLOW)
        self.iot.attach_policy(policyName=CUSTOMER_POLICY, target=self.certs["c1"]["arn"])
        self.iot.create_thing_group(thingGroupName="site")
        self.iot.add_thing_to_thing_group(thingGroupName="site", thingName="t2")
        self.iot.attach_policy(
            policyName=CUSTOMER_POLICY, target=self.iot.describe_thing_group(thingGroupName="site")["thingGroupArn"]
        )

    def teardown(self) -> None:
        self.mock.stop()
        moto_iot.clock = moto_iot.utcnow

    def tick(self, seconds: int = 2) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def responder(self, **kw: Any):
        made = make_responder(keys=tuple(self.keys), **kw)
        made.calls.observers.append(lambda s, r, op, p: self.writes.append((op, json.dumps(p, default=str))))
        return made

    # ------------------------------------------------------------------ the model

    def expected_status(self, cert: str) -> str:
        held = any(cert in self.holds[t] for t in self.quarantined)
        return "INACTIVE" if held else self.baseline[cert]

    def expected_policy(self, cert: str) -> bool:
        return any(t in self.quarantined for t in CERT_OF[cert])

    def apply_quarantine(self, thing: str, deactivate: bool, before: Dict[str, str]) -> None:
        self.quarantined.add(thing)
        if deactivate:
            for cert, things in CERT_OF.items():
                if thing not in things:
                    continue
                held_elsewhere = any(cert in self.holds[o] for o in self.quarantined if o != thing)
                if before[cert] == "ACTIVE" or held_elsewhere:
                    self.holds[thing].add(cert)

    def apply_release(self, thing: str) -> None:
        self.quarantined.discard(thing)
        self.holds[thing] = set()

    def statuses(self) -> Dict[str, str]:
        return {
            c: self.iot.describe_certificate(certificateId=v["id"])["certificateDescription"]["status"]
            for c, v in self.certs.items()
        }

    # ------------------------------------------------------------------ rules

    @rule(thing=st.sampled_from(THINGS), deactivate=st.booleans())
    def quarantine(self, thing: str, deactivate: bool) -> None:
        self.tick()
        before = self.statuses()
        options = QuarantineOptions(deactivate_certificates=deactivate)
        result = self.responder().quarantine(thing, REGION, options, run_context(f"q-{thing}"))
        assert result.outcome in ("done", "already-in-state"), result.message
        self.apply_quarantine(thing, deactivate, before)
        self.old_records[thing] = (self.iot.describe_thing(thingName=thing).get("attributes") or {}).get(
            RECORD_ATTRIBUTE, ""
        )

    @rule(thing=st.sampled_from(THINGS))
    def release(self, thing: str) -> None:
        self.tick()
        result = self.responder().release(thing, REGION, QuarantineOptions(), run_context(f"r-{thing}"))
        if thing in self.quarantined:
            assert result.outcome == "done", result.message
        else:
            assert result.outcome in ("already-in-state", "warning", "done"), result.message
        self.apply_release(thing)

    @rule(cert=st.sampled_from(sorted(CERT_OF)), status=st.sampled_from(["ACTIVE", "INACTIVE"]))
    def human_sets_certificate(self, cert: str, status: str) -> None:
        """A human (de)activates a certificate: from now on its state is the human's."""
        self.tick()
        self.iot.update_certificate(certificateId=self.certs[cert]["id"], newStatus=status)
        self.baseline[cert] = status
        for held in self.holds.values():
            held.discard(cert)

    @rule(thing=st.sampled_from(THINGS))
    def human_edits_an_attribute(self, thing: str) -> None:
        self.tick()
        self.iot.update_thing(thingName=thing, attributePayload={"attributes": {"site": "plant-b"}, "merge": True})

    @precondition(lambda self: any(t not in self.quarantined and self.old_records.get(t) for t in THINGS))
    @rule(data=st.data())
    def record_copied_back(self, data: Any) -> None:
        """Someone writes an old record back on a released thing: it must change nothing."""
        candidates = [t for t in THINGS if t not in self.quarantined and self.old_records.get(t)]
        thing = data.draw(st.sampled_from(candidates))
        self.tick()
        self.iot.update_thing(
            thingName=thing,
            attributePayload={"attributes": {RECORD_ATTRIBUTE: self.old_records[thing]}, "merge": True},
        )

    @rule()
    def rotate_key(self) -> None:
        self.keys.insert(0, f"k{len(self.keys)}".encode() + b"-" * 30)

    @rule(sid=st.sampled_from(["alert-a", "alert-b"]), kv_up=st.booleans())
    def incident(self, sid: str, kv_up: bool) -> None:
        store = self.store if kv_up else DownStore()
        responder = self.responder(store=store, dedup_required=True)
        before = sum(1 for op, _ in self.writes if op == "Publish")
        options = IncidentOptions(destination="sns", sns_topic_arn=self.sns_topic)
        result = responder.start_incident("t0", REGION, {"thing_name": "t0"}, options, run_context(sid))
        sent = sum(1 for op, _ in self.writes if op == "Publish") - before
        assert sent == (1 if result.outcome == "done" else 0), result.message
        self.published[sid] = self.published.get(sid, 0) + sent
        assert self.published[sid] <= 1, f"alert {sid} published twice"

    @rule(thing=st.sampled_from(["t0", "t1"]), quarantine_first=st.booleans())
    def race(self, thing: str, quarantine_first: bool) -> None:
        """A quarantine and a release of one thing overlap: the one held after its reads loses with conflict."""
        self.tick()
        before = self.statuses_before_first = self.statuses()
        held = self.responder()
        reached, resume = threading.Event(), threading.Event()

        def hold(service: str, region: str, operation: str, params: Dict[str, Any]) -> None:
            if operation == "ListThingGroupsForThing" and not reached.is_set():
                reached.set()
                resume.wait(30)

        held.calls.observers.append(hold)
        options = QuarantineOptions(deactivate_certificates=True)
        out: Dict[str, Any] = {}
        first = (
            (lambda: held.quarantine(thing, REGION, options, run_context("race-q")))
            if quarantine_first
            else (lambda: held.release(thing, REGION, QuarantineOptions(), run_context("race-r")))
        )
        worker = threading.Thread(target=lambda: out.setdefault("first", first()))
        worker.start()
        assert reached.wait(30)
        if quarantine_first:
            out["second"] = self.responder().release(thing, REGION, QuarantineOptions(), run_context("r2"))
        else:
            out["second"] = self.responder().quarantine(thing, REGION, options, run_context("q2"))
        resume.set()
        worker.join(30)
        second, first_result = out["second"], out["first"]
        ok = ("done", "already-in-state")
        # the second ran to its end while the first was held: it went first
        if quarantine_first:
            if second.outcome in ok:
                self.apply_release(thing)
        elif second.outcome in ok:
            self.apply_quarantine(thing, True, before)
        if second.outcome == "done":  # it wrote: the held run read a state that no longer holds
            assert first_result.outcome == "conflict" and first_result.error_code is None, first_result.message
        elif first_result.outcome in ok:  # the second changed nothing: the first is simply later
            if quarantine_first:
                self.apply_quarantine(thing, True, self.statuses_before_first)
            else:
                self.apply_release(thing)

    # ------------------------------------------------------------------ invariants

    def _customer_state(self) -> Any:
        site = self.iot.describe_thing_group(thingGroupName="site")["thingGroupArn"]
        return (
            self.iot.get_policy(policyName=CUSTOMER_POLICY)["policyDocument"],
            sorted(v["versionId"] for v in self.iot.list_policy_versions(policyName=CUSTOMER_POLICY)["policyVersions"]),
            sorted(self.iot.list_targets_for_policy(policyName=CUSTOMER_POLICY)["targets"]),
            sorted(t for t in self.iot.list_things_in_thing_group(thingGroupName="site")["things"]),
            sorted(p["policyName"] for p in self.iot.list_attached_policies(target=site)["policies"]),
        )

    @invariant()
    def nothing_the_add_on_did_not_create_is_touched(self) -> None:
        assert self._customer_state() == self.customer_before
        named = [op for op, params in self.writes if CUSTOMER_POLICY in params or '"site"' in params]
        assert not [op for op in named if op not in ("ListTargetsForPolicy", "GetPolicy")], named

    @invariant()
    def aws_is_what_the_outcomes_said(self) -> None:
        statuses = self.statuses()
        for cert, ids in self.certs.items():
            assert statuses[cert] == self.expected_status(cert), (cert, statuses, self.holds, self.quarantined)
            attached = POLICY in [
                p["policyName"] for p in self.iot.list_attached_policies(target=ids["arn"])["policies"]
            ]
            assert attached == self.expected_policy(cert), (cert, self.quarantined)
        for thing in THINGS:
            groups = [g["groupName"] for g in self.iot.list_thing_groups_for_thing(thingName=thing)["thingGroups"]]
            assert ("QUARANTINED" in groups) == (thing in self.quarantined), (thing, groups)


Responses.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    derandomize=os.environ.get("IOT_STATEFUL_RANDOM") != "1",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # shrinking a failing sequence of AWS calls takes minutes: set IOT_STATEFUL_SHRINK=1 to shrink one
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("IOT_STATEFUL_SHRINK") == "1" else []),
)
TestResponses = Responses.TestCase
