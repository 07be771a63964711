"""Shared fixtures for the response-action unit tests (no tests here): a small seeded IoT registry in moto.

Certificates are registered from PEMs generated once per process (EC keys): moto's create_keys_and_certificate
makes a 2048-bit RSA key per call, which would dominate the test time.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Dict, List

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iot_defender.aws import Account
from tests.harness.aws.server import _moto_thing_versions

# moto as the loopback AWS serves it: thing versions, tags on groups and policies, certificate modification dates
_moto_thing_versions()

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

# thing -> statuses of its certificates; "groups" per thing; "crowded" has 3 attributes and no thing type.
CERTIFICATES = {
    "sensor-001": ("ACTIVE", "INACTIVE", "REVOKED"),
    "sensor-002": ("ACTIVE",),
    "crowded": ("ACTIVE",),
}
GROUPS = {"pump-station-017": "pumps", "sensor-001": "sensors", "sensor-002": "sensors", "crowded": "sensors"}


@functools.cache
def certificate_pems(count: int = 8) -> List[str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pems = []
    for number in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"device-{number}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1000 + number)
            .not_valid_before(dt.datetime(2025, 1, 1))
            .not_valid_after(dt.datetime(2035, 1, 1))
            .sign(key, hashes.SHA256())
        )
        pems.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    return pems


def account() -> Account:
    return Account(
        name="test", access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    )


def seed_registry(client) -> Dict[str, List[dict]]:
    """Groups critical-infra > pumps, sensors; four things; certificates with mixed statuses."""
    client.create_thing_group(thingGroupName="critical-infra")
    client.create_thing_group(thingGroupName="pumps", parentGroupName="critical-infra")
    client.create_thing_group(thingGroupName="sensors")
    for name, group in GROUPS.items():
        client.create_thing(thingName=name, attributePayload={"attributes": {"site": "plant-a"}})
        client.add_thing_to_thing_group(thingGroupName=group, thingName=name)
    client.update_thing(
        thingName="crowded", attributePayload={"attributes": {"a": "1", "b": "2", "c": "3"}, "merge": False}
    )
    pems = iter(certificate_pems())
    certs: Dict[str, List[dict]] = {}
    for thing, statuses in CERTIFICATES.items():
        for status in statuses:
            cert = client.register_certificate_without_ca(certificatePem=next(pems), status="ACTIVE")
            client.update_certificate(certificateId=cert["certificateId"], newStatus=status)
            client.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
            certs.setdefault(thing, []).append(cert)
    return certs


def registry_state(client, thing: str) -> dict:
    """Everything quarantine may touch on a thing: groups, attributes, certificate statuses."""
    groups = sorted(g["groupName"] for g in client.list_thing_groups_for_thing(thingName=thing)["thingGroups"])
    statuses = {}
    for arn in client.list_thing_principals(thingName=thing)["principals"]:
        cert_id = arn.rsplit("/", 1)[-1]
        statuses[cert_id] = client.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]
    return {
        "groups": groups,
        "attributes": client.describe_thing(thingName=thing)["attributes"],
        "certificates": statuses,
    }


KEY = bytes(range(32))
OWN_TAGS = [{"Key": "managed-by", "Value": "TA-aws-iot-defender"}]


def make_responder(keys=(KEY,), **kw):
    """A Responder on moto with the record keys ``keys`` (newest first), whatever the Responder's age: the
    regression tests run unchanged against the code before the fix (which took one ``record_key``)."""
    import inspect

    from iot_defender import respond
    from iot_defender.aws import AwsSession, ClientSettings
    from iot_defender.respond import RateLimiter, Responder

    accepted = inspect.signature(Responder.__init__).parameters
    if "keyring" in accepted:
        kw["keyring"] = respond.Keyring(list(keys))
    elif keys:
        kw["record_key"] = keys[0]
    kw = {k: v for k, v in kw.items() if k in accepted}
    session = AwsSession(account(), ClientSettings(retry_mode="standard", max_attempts=3))
    return Responder(session, account_id=ACCOUNT_ID, limiter=RateLimiter({}), **kw)


def run_context(sid: str = "scheduler__admin__search__RMD5abc_at_1763806200_42"):
    from iot_defender.respond import RunContext

    return RunContext(sid=sid)


def groups_of(client, thing: str) -> List[str]:
    return sorted(g["groupName"] for g in client.list_thing_groups_for_thing(thingName=thing)["thingGroups"])


def status_of(client, cert_id: str) -> str:
    return client.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]


def policies_on(client, target: str) -> List[str]:
    return sorted(p["policyName"] for p in client.list_attached_policies(target=target)["policies"])
