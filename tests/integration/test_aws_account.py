"""The account layer against loopback AWS: credential validation and self-refreshing assumed-role credentials."""

from __future__ import annotations

import time

import pytest

from iot_defender.aws import Account, AccountValidationError, AwsSession, ClientSettings, validate_account
from tests.harness.aws import LoopbackAWS

ROLE = "arn:aws:iam::123456789012:role/SplunkIoTDefender"


@pytest.fixture
def aws(monkeypatch):
    with LoopbackAWS() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.endpoint_url)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        yield endpoint


def account(aws, **overrides):
    fields = {"name": "prod", "access_key_id": aws.access_key, "secret_access_key": aws.secret_key}
    fields.update(overrides)
    return Account(**fields)


def test_valid_keys_return_the_caller_identity(aws):
    assert validate_account(account(aws))["account"] == "123456789012"


@pytest.mark.parametrize(
    ("overrides", "hint"),
    [
        ({"access_key_id": "AKIAUNKNOWNUNKNOWN00"}, "does not recognise the access key ID"),
        ({"secret_access_key": "wrong/secret/for/this/key/000000000000000"}, "secret access key does not match"),
    ],
)
def test_bad_keys_are_refused_with_a_clear_message_and_no_secret(aws, overrides, hint):
    with pytest.raises(AccountValidationError) as info:
        validate_account(account(aws, **overrides))
    message = str(info.value)
    assert hint in message and "Account 'prod'" in message
    assert aws.secret_key not in message and "wrong/secret" not in message


def test_role_that_cannot_be_assumed_names_the_step(aws):
    aws.add_role(ROLE, external_id="the-right-id")
    with pytest.raises(AccountValidationError, match="while assuming the configured role") as info:
        validate_account(account(aws, role_arn=ROLE, external_id="a-wrong-id"))
    assert "a-wrong-id" not in str(info.value)
    assert validate_account(account(aws, role_arn=ROLE, external_id="the-right-id"))["arn"].startswith(
        "arn:aws:sts::123456789012:assumed-role/SplunkIoTDefender/"
    )


@pytest.mark.parametrize(
    "pasted",
    ["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "AKIAIOSFODNN7EXAMPLE", "tok=en.value@corp,x", "a/b/c/deep/secret"],
)
def test_a_secret_pasted_into_a_valid_looking_role_arn_never_comes_back(aws, pasted):
    """Regression (issue 17, class 5): the step said 'assuming role <the ARN>' and AWS's own message quoted it."""
    role = f"arn:aws:iam::123456789012:role/{pasted}"
    with pytest.raises(AccountValidationError) as info:
        validate_account(account(aws, role_arn=role, external_id="external-id-1"))
    message = str(info.value)
    assert "assuming the configured role" in message
    assert pasted not in message and role not in message
    for piece in pasted.split("/"):
        assert len(piece) < 5 or piece not in message, (piece, message)


def test_assumed_role_credentials_refresh_themselves_before_expiry(aws):
    aws.add_role(ROLE)
    aws.sts_credential_lifetime_seconds = 4
    session = AwsSession(account(aws, role_arn=ROLE), ClientSettings(max_attempts=2))
    iot = session.client("iot")
    first_key = session.credentials.get_frozen_credentials().access_key
    deadline = time.time() + 9
    calls = 0
    while time.time() < deadline:  # more than two lifetimes of the temporary credentials
        iot.list_active_violations()  # an operation the add-on calls (the IAM test records it)
        calls += 1
        time.sleep(0.2)
    assert session.assume_role_calls >= 3
    assert session.credentials.get_frozen_credentials().access_key != first_key
    refused = [r for r in aws.requests.filter(service="iot") if r.error_code]
    assert calls > 20 and refused == []  # refreshed early: AWS never saw an expired token


def test_credentials_expired_by_the_service_are_refreshed_and_the_call_retried(aws):
    aws.add_role(ROLE)
    session = AwsSession(account(aws, role_arn=ROLE), ClientSettings(max_attempts=2))
    iot = session.client("iot")
    session.call(iot, "list_active_violations")
    assert aws.expire_all_credentials() >= 1
    session.call(iot, "list_active_violations")
    assert session.assume_role_calls == 2
    codes = [r.error_code for r in aws.requests.filter(service="iot")]
    assert codes == [None, "ExpiredTokenException", None]
