"""Where an incident goes: a Systems Manager OpsCenter OpsItem, an Incident Manager incident, or an SNS message.
Each sender makes the one API call of its destination from an :class:`Incident` already rendered from its row;
deciding whether to send (suppression, deduplication) is :mod:`.incidents`'."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from botocore.exceptions import ClientError

from .. import incident as inc
from .. import opscenter
from ..aws import error_code
from ..events import to_iso
from .calls import AwsCalls
from .common import RunContext, parse_arn
from .options import IncidentOptions


@dataclass
class Incident:
    """One incident to start, rendered from its row before any AWS call."""

    thing_name: str
    region: str
    row: Mapping[str, Any]
    options: IncidentOptions
    title: str
    impact: Optional[int]
    token: str
    details: Dict[str, Any]
    # the thing's owner, priority and business unit (OwnerOf), plain text; empty when unknown
    owner: Dict[str, str] = field(default_factory=dict)

    def owner_fields(self) -> Dict[str, str]:
        """``owner`` / ``asset_priority`` / ``business_unit``: what the SNS message and the incident carry."""
        known = opscenter.owner_data(self.owner)
        return {name: known[key] for name, key in OWNER_FIELDS if key in known}


OWNER_FIELDS = (
    ("owner", "iot_owner"),
    ("asset_priority", "iot_asset_priority"),
    ("business_unit", "iot_business_unit"),
)


class Destinations:
    """The destination senders for one account."""

    def __init__(self, calls: AwsCalls):
        self.calls = calls

    def open_ops_item(self, incident: Incident, thing_arn: str, context: RunContext) -> Tuple[str, bool]:
        """CreateOpsItem; returns (OpsItemId, whether OpsCenter answered with an open OpsItem it already had)."""
        options, region, details = incident.options, incident.region, incident.details
        topic = options.sns_topic_arn or ""
        notify = topic if topic and parse_arn(topic).get("region") == region else None
        if topic and not notify:
            details["notification"] = f"not sent: OpsCenter notifies only topics in the OpsItem's region ({region})"
        subject = opscenter.Subject(
            partition=self.calls.partition,
            account_id=self.calls.account_id,
            region=region,
            thing_name=incident.thing_name,
            thing_arn=thing_arn or self.calls.arn(region, "thing", incident.thing_name),
            violation_id=str(details.get("violation_id") or ""),
            search_name=context.search_name,
            sid=context.sid,
            results_link=context.results_link,
            row=incident.row,
            owner=incident.owner,
        )
        request = opscenter.create_request(
            subject,
            title=incident.title,
            impact=incident.impact,
            source=options.opsitem_source,
            notification_topic=notify,
        )
        details.update(dedup=opscenter.dedup_of(request), severity=request["Severity"], priority=request["Priority"])
        try:
            answer = self.calls.call("ssm", region, "CreateOpsItem", **request)
            ops_item_id = str(answer["OpsItemId"])
            # OpsCenter answers a duplicate (same /aws/dedup, OpsItem still open) with the existing OpsItem's id
            # and no error: only the request marker stored in it tells whether this very call created it.
            existed = not self._created_by(region, ops_item_id, request)
        except ClientError as exc:
            error: Mapping[str, object] = exc.response  # botocore's typed answer omits the service's own members
            if error_code(exc) != "OpsItemAlreadyExistsException" or not error.get("OpsItemId"):
                raise
            ops_item_id, existed = str(error["OpsItemId"]), True
        details["ops_item_id"] = ops_item_id
        details["ops_item_arn"] = (
            f"arn:{self.calls.partition}:ssm:{region}:{self.calls.account_id}:opsitem/{ops_item_id}"
        )
        return ops_item_id, existed

    def _created_by(self, region: str, ops_item_id: str, request: Mapping[str, Any]) -> bool:
        """True when the OpsItem holds this request's marker (GetOpsItem)."""
        mine = request["OperationalData"].get(opscenter.REQUEST_KEY, {}).get("Value")
        item = self.calls.call("ssm", region, "GetOpsItem", OpsItemId=ops_item_id).get("OpsItem") or {}
        theirs = ((item.get("OperationalData") or {}).get(opscenter.REQUEST_KEY) or {}).get("Value")
        return bool(mine) and mine == theirs

    def start_in_incident_manager(self, incident: Incident, items: List[Dict[str, Any]], when: _dt.datetime) -> str:
        options = incident.options
        request: Dict[str, Any] = {
            "clientToken": incident.token,
            "responsePlanArn": options.response_plan_arn,
            "title": incident.title,
            "relatedItems": items,
            "triggerDetails": {"source": options.source, "timestamp": when, "rawData": self._raw_data(incident)},
        }
        if incident.impact is not None:
            request["impact"] = incident.impact
        answer = self.calls.call("ssm-incidents", incident.region, "StartIncident", **request)
        reference = answer["incidentRecordArn"]
        incident.details["incident_record_arn"] = reference
        return reference

    @staticmethod
    def _raw_data(incident: Incident) -> str:
        """The row as JSON, the owner's keys (``iot_owner``, ``iot_asset_priority``, ``iot_business_unit``) first."""
        return inc.raw_data({**opscenter.owner_data(incident.owner), **incident.row})

    def publish(
        self, incident: Incident, items: List[Dict[str, Any]], when: _dt.datetime, topic: Optional[str] = None
    ) -> str:
        """Publish the incident to the alert's topic (or ``topic``: the owning team's)."""
        options, thing_name, region = incident.options, incident.thing_name, incident.region
        topic = topic or options.sns_topic_arn or ""
        topic_region = parse_arn(topic).get("region") or region
        message = {
            "type": "iot-defender-incident",
            "title": incident.title,
            "impact": incident.impact,
            "thing_name": thing_name,
            "account_id": self.calls.account_id,
            "region": region,
            "related_items": [
                {"type": i["identifier"]["type"], "title": i.get("title"), **i["identifier"]["value"]} for i in items
            ],
            "trigger": {"source": options.source, "timestamp": to_iso(when)},
            "dedupe_key": incident.token,
            "raw_data": json.loads(inc.raw_data(incident.row)),
            **incident.owner_fields(),
        }
        params: Dict[str, Any] = {
            "TopicArn": topic,
            "Subject": inc.clean_text(incident.title.encode("ascii", "replace").decode("ascii"), inc.SNS_SUBJECT_MAX),
            "Message": json.dumps(message, separators=(",", ":"), ensure_ascii=False),
            "MessageAttributes": {
                "thing_name": {"DataType": "String", "StringValue": thing_name},
            },
        }
        owner = incident.owner_fields().get("owner")
        if owner:  # a subscription filter policy can route by owner
            params["MessageAttributes"]["owner"] = {"DataType": "String", "StringValue": owner}
        if incident.impact is not None:
            params["MessageAttributes"]["impact"] = {"DataType": "Number", "StringValue": str(incident.impact)}
        if topic.endswith(".fifo"):
            params["MessageGroupId"] = thing_name
            params["MessageDeduplicationId"] = incident.token
        return str(self.calls.call("sns", topic_region, "Publish", **params)["MessageId"])
