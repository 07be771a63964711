"""The actions' options (alert parameters / Lambda settings), checked before any call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .. import incident as inc
from .. import opscenter
from .common import (
    POLICY_NAME_RE,
    RESPONSE_PLAN_ARN_RE,
    SNS_TOPIC_ARN_RE,
    THING_GROUP_NAME_RE,
    OptionError,
    check_arn,
    show,
)

DEFAULT_QUARANTINE_GROUP = "QUARANTINED"
DEFAULT_POLICY_NAME = "TA-IoTDefender-Quarantine"


@dataclass(frozen=True)
class QuarantineOptions:
    group: str = DEFAULT_QUARANTINE_GROUP
    policy_name: str = DEFAULT_POLICY_NAME
    allow_remediation: bool = True
    deactivate_certificates: bool = False
    protected_groups: Tuple[str, ...] = ()
    # False when the isolation policy is owned by someone else (the response stack's CloudFormation): then it is
    # only checked (the add-on's tag and deny document) and attached to the group, never created or rewritten.
    manage_policy: bool = True

    def check(self) -> None:
        if not THING_GROUP_NAME_RE.match(self.group or ""):
            raise OptionError(f"quarantine group {show(self.group)} is not a thing group name ([a-zA-Z0-9:_-], 1-128)")
        if not POLICY_NAME_RE.match(self.policy_name or ""):
            raise OptionError(f"policy name {show(self.policy_name)} is not an IoT policy name ([\\w+=,.@-], 1-128)")
        for name in self.protected_groups:
            if not THING_GROUP_NAME_RE.match(name):
                raise OptionError(f"protected thing group {show(name)} is not a thing group name")
        if self.group in self.protected_groups:
            raise OptionError(f"the quarantine group {self.group} is also listed as protected")


DESTINATIONS = ("opscenter", "incident_manager", "sns")
DEFAULT_TITLE = "IoT Device Defender: {thing_name} {behavior_name|behavior.name}"


def _check_topic(arn: Optional[str], partition: Optional[str]) -> None:
    check_arn(
        arn,
        SNS_TOPIC_ARN_RE,
        partition,
        what="SNS topic",
        expected="an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<topic>)",
    )


@dataclass(frozen=True)
class IncidentOptions:
    destination: str = "incident_manager"
    response_plan_arn: Optional[str] = None
    sns_topic_arn: Optional[str] = None
    title: str = DEFAULT_TITLE
    impact: str = "3"
    suppression_minutes: int = 0
    source: str = inc.TRIGGER_SOURCE
    opsitem_source: str = opscenter.SOURCE

    def check(self, partition: Optional[str] = None) -> None:
        if self.destination not in DESTINATIONS:
            raise OptionError(f"destination must be one of {', '.join(DESTINATIONS)}")
        if self.destination == "opscenter":
            problem = opscenter.check_source(self.opsitem_source)
            if problem:
                raise OptionError(problem)
            if self.sns_topic_arn:  # optional: the topic OpsCenter notifies of the OpsItem
                _check_topic(self.sns_topic_arn, partition)
        elif self.destination == "incident_manager":
            check_arn(
                self.response_plan_arn,
                RESPONSE_PLAN_ARN_RE,
                partition,
                what="response plan",
                expected="an Incident Manager response plan ARN (arn:<partition>:ssm-incidents::<account>:"
                "response-plan/<name>)",
            )
        else:
            _check_topic(self.sns_topic_arn, partition)
        if not self.title or not self.title.strip():
            raise OptionError("the incident title template is empty")
        if self.impact.strip() and not inc.template_fields(self.impact):
            inc.render_impact(self.impact, {})  # a fixed impact is checked once, before any row
        if not 0 <= self.suppression_minutes <= 7 * 24 * 60:
            raise OptionError("suppression window must be between 0 and 10080 minutes (7 days)")
        source = self.source or ""
        if not source or len(source) > inc.SOURCE_MAX or source.lower().startswith("aws."):
            raise OptionError("trigger source must be 1-50 characters and must not start with 'aws.'")
