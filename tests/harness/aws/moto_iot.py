"""What moto 5's IoT backend lacks and the response actions depend on, patched in as AWS IoT documents it:

- tags on thing groups and policies (``tags`` of CreateThingGroup / CreatePolicy, TagResource, UntagResource,
  ListTagsForResource): moto 5.2 ignores ``tags`` and has no tag operations; the add-on proves what it created by
  its tag (docs/security.md);
- a certificate's ``lastModifiedDate`` moves on with UpdateCertificate (moto keeps the creation date): release
  leaves INACTIVE a certificate someone changed after the quarantine;
- a thing's registry version (see ``server._moto_thing_versions``).

Tags live on the backend (one per account and region), so a moto reset forgets them with everything else.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable, Dict, List

from moto.core.utils import utcnow

# What dates UpdateCertificate: moto's clock, or a test's (the stateful test moves it on by whole seconds).
clock: Callable[[], dt.datetime] = utcnow


def _tags(backend: Any) -> Dict[str, Dict[str, str]]:
    found = getattr(backend, "_loopback_tags", None)
    if found is None:
        found = {}
        backend._loopback_tags = found
    return found


def _store(backend: Any, arn: str, tags: List[Dict[str, str]]) -> None:
    if tags:
        _tags(backend).setdefault(arn, {}).update({t["Key"]: t.get("Value", "") for t in tags})


def patch_moto_iot() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.iot import responses

    cls = responses.IoTResponse
    if getattr(cls, "_loopback_tags", False):
        return
    create_group, create_policy, update_certificate = cls.create_thing_group, cls.create_policy, cls.update_certificate

    def create_thing_group(self):  # type: ignore[no-untyped-def]
        answer = create_group(self)
        name = self.path.split("/thing-groups/")[-1]
        from urllib.parse import unquote

        group = self.iot_backend.describe_thing_group(unquote(name))
        _store(self.iot_backend, group.arn, self._get_param("tags") or [])
        return answer

    def create_policy_tagged(self):  # type: ignore[no-untyped-def]
        answer = create_policy(self)
        policy = self.iot_backend.get_policy(self._get_param("policyName"))
        _store(self.iot_backend, policy.arn, self._get_param("tags") or [])
        return answer

    def update_certificate_dated(self):  # type: ignore[no-untyped-def]
        answer = update_certificate(self)
        cert = self.iot_backend.describe_certificate(self._get_param("certificateId"))
        cert.last_modified_date = clock()
        return answer

    def list_tags_for_resource(self):  # type: ignore[no-untyped-def]
        arn = self._get_param("resourceArn")
        tags = _tags(self.iot_backend).get(arn, {})
        return ActionResult({"tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]})

    def tag_resource(self):  # type: ignore[no-untyped-def]
        body = json.loads(self.body or "{}")
        _store(self.iot_backend, body.get("resourceArn", ""), body.get("tags") or [])
        return EmptyResult()

    def untag_resource(self):  # type: ignore[no-untyped-def]
        body = json.loads(self.body or "{}")
        held = _tags(self.iot_backend).get(body.get("resourceArn", ""), {})
        for key in body.get("tagKeys") or []:
            held.pop(key, None)
        return EmptyResult()

    cls.create_thing_group = create_thing_group
    cls.create_policy = create_policy_tagged
    cls.update_certificate = update_certificate_dated
    cls.list_tags_for_resource = list_tags_for_resource
    cls.tag_resource = tag_resource
    cls.untag_resource = untag_resource
    cls._loopback_tags = True  # type: ignore[attr-defined]
