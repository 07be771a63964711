"""Registry reads every action builds on: things, their groups and certificates, who shares a certificate, tags."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from botocore.exceptions import ClientError

from ..aws import error_code
from .calls import AwsCalls


def _missing(exc: ClientError) -> bool:
    return error_code(exc) == "ResourceNotFoundException"


class Registry:
    """Read-only registry look-ups (group ancestors cached for the run)."""

    def __init__(self, calls: AwsCalls):
        self.calls = calls
        self._lock = threading.Lock()
        self._ancestors: Dict[Tuple[str, str], List[str]] = {}

    def describe_thing(self, region: str, thing_name: str) -> Optional[Dict[str, Any]]:
        try:
            return self.calls.call("iot", region, "DescribeThing", thingName=thing_name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def describe_group(self, region: str, group: str) -> Optional[Dict[str, Any]]:
        try:
            return self.calls.call("iot", region, "DescribeThingGroup", thingGroupName=group)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def policy(self, region: str, name: str) -> Optional[Dict[str, Any]]:
        try:
            return self.calls.call("iot", region, "GetPolicy", policyName=name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def thing_groups(self, region: str, thing_name: str) -> List[str]:
        groups = self.calls.pages(
            "iot", region, "ListThingGroupsForThing", "thingGroups", thingName=thing_name, maxResults=250
        )
        return [g["groupName"] for g in groups]

    def group_ancestors(self, region: str, group: str) -> List[str]:
        key = (region, group)
        with self._lock:
            if key in self._ancestors:
                return self._ancestors[key]
        answer = self.describe_group(region, group) or {}
        parents = (answer.get("thingGroupMetadata") or {}).get("rootToParentThingGroups") or []
        names = [p.get("groupName") for p in parents if p.get("groupName")]
        with self._lock:
            self._ancestors[key] = names
        return names

    def protected_by(self, region: str, groups: List[str], protected: Sequence[str]) -> Optional[str]:
        """The protected group a thing belongs to (directly or through a child group), or None."""
        if not protected:
            return None
        wanted = set(protected)
        for group in groups:
            if group in wanted:
                return group
        for group in groups:
            for ancestor in self.group_ancestors(region, group):
                if ancestor in wanted:
                    return f"{ancestor} (through {group})"
        return None

    def certificate_arns(self, region: str, thing_name: str) -> List[str]:
        """The ARNs of the X.509 certificates attached to the thing."""
        principals = self.calls.pages("iot", region, "ListThingPrincipals", "principals", thingName=thing_name)
        return [arn for arn in principals if ":cert/" in arn]

    def certificate(self, region: str, cert_id: str) -> Dict[str, Any]:
        """The certificate's description (``status``, ``lastModifiedDate``); status MISSING when it is gone."""
        try:
            answer = self.calls.call("iot", region, "DescribeCertificate", certificateId=cert_id)
        except ClientError as exc:
            if _missing(exc):
                return {"status": "MISSING"}
            raise
        return dict(answer.get("certificateDescription") or {"status": "UNKNOWN"})

    def certificate_status(self, region: str, cert_id: str) -> str:
        return str(self.certificate(region, cert_id).get("status") or "UNKNOWN")

    def principal_things(self, region: str, cert_arn: str) -> List[str]:
        """Every thing the certificate is attached to."""
        try:
            return list(
                self.calls.pages("iot", region, "ListPrincipalThings", "things", principal=cert_arn, maxResults=250)
            )
        except ClientError as exc:
            if _missing(exc):
                return []
            raise

    def tags(self, region: str, arn: str) -> Dict[str, str]:
        tags = self.calls.pages("iot", region, "ListTagsForResource", "tags", resourceArn=arn)
        return {str(t.get("Key")): str(t.get("Value")) for t in tags}

    def missing_groups(self, region: str, names: Sequence[str]) -> List[str]:
        """The thing groups among ``names`` that do not exist in the region (names are case-sensitive)."""
        return [name for name in names if self.describe_group(region, name) is None]
