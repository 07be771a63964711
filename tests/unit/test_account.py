"""Account configuration, credential validation messages, proxy settings and secret hygiene."""

from __future__ import annotations

import sys
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_defender.aws import (
    Account,
    AccountValidationError,
    ClientSettings,
    ConfigError,
    parse_regions,
    proxy_url_from_conf,
    redact,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def conf(**overrides):
    base = {
        "credential_source": "access_key",
        "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": SECRET,
        "partition": "aws",
        "default_region": "eu-west-1",
    }
    base.update(overrides)
    return base


def test_secrets_never_appear_in_repr():
    account = Account.from_conf("prod", conf(role_arn="arn:aws:iam::123456789012:role/R", external_id="ext-123456"))
    assert SECRET not in repr(account) and "ext-123456" not in repr(account)
    assert account.secrets() == [SECRET, "ext-123456"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aws_secret_access_key": ""}, "both required"),
        ({"aws_access_key_id": "not-a-key"}, "access key ID"),
        ({"partition": "moon"}, "partition"),
        ({"default_region": "Paris"}, "region"),
        ({"role_arn": "arn:aws:iam::12:role/x"}, "role ARN"),
        ({"role_arn": "arn:aws-cn:iam::123456789012:role/x"}, "partition 'aws-cn'"),
        ({"credential_source": "magic"}, "credential source"),
    ],
)
def test_unusable_accounts_are_refused_with_the_field_named(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        Account.from_conf("prod", conf(**overrides))
    assert SECRET not in str(info.value)


def test_default_chain_needs_no_keys():
    account = Account.from_conf("ec2", {"credential_source": "default_chain", "default_region": "us-west-2"})
    assert account.access_key_id is None


def test_proxy_url_and_its_redaction():
    url = proxy_url_from_conf(
        {
            "proxy_enabled": "1",
            "proxy_type": "http",
            "proxy_url": "proxy.corp",
            "proxy_port": "3128",
            "proxy_username": "svc",
            "proxy_password": "p@ss word",
        }
    )
    assert url == "http://svc:p%40ss%20word@proxy.corp:3128"
    assert redact(f"could not connect to {url}", []) == "could not connect to http://********@proxy.corp:3128"
    assert proxy_url_from_conf({"proxy_enabled": "0", "proxy_url": "x"}) is None
    with pytest.raises(ConfigError, match="socks5"):
        proxy_url_from_conf({"proxy_enabled": "1", "proxy_type": "socks5", "proxy_url": "h", "proxy_port": "1"})
    settings = ClientSettings(proxy_url=url)
    assert "p%40ss" not in repr(settings)
    config = settings.botocore_config()
    assert config.proxies == {"http": url, "https": url}
    assert config.retries == {"mode": "adaptive", "max_attempts": 8}
    assert "TA-aws-iot-defender/" in config.user_agent_extra


# --- issue 17, class 5: every setting through params.py; proxy host/port/type validated; no value echoed.

SETTING_SECRET = "s3cr3t-PASTED-value"


@given(
    field=st.sampled_from(["max_attempts", "timeout_seconds"]),
    value=st.one_of(
        st.just(True),
        st.just("true"),
        st.just("1_0"),
        st.text(alphabet="٠١٢٣٤٥٦٧٨٩", min_size=1, max_size=2),
        st.just("\uff15"),
        st.text(alphabet="abc+_ ", min_size=1, max_size=5).filter(str.strip),
        st.just("1.5"),
        st.just(f"3{SETTING_SECRET}"),
    ),
)
def test_aws_api_tab_refuses_what_is_not_ascii_digits_and_never_echoes(field, value):
    """Regression: a JSON ``true`` became 1, ``"1_0"`` 10 and Arabic-Indic digits numbers (int() takes them)."""
    with pytest.raises(ConfigError) as info:
        ClientSettings.from_conf({field: value})
    assert field in str(info.value) and SETTING_SECRET not in str(info.value)


@given(st.integers(min_value=1, max_value=20), st.integers(min_value=1, max_value=300))
def test_aws_api_tab_accepts_ascii_numbers_in_range(attempts, timeout):
    settings = ClientSettings.from_conf({"max_attempts": f" {attempts} ", "timeout_seconds": str(timeout)})
    assert (settings.max_attempts, settings.timeout_seconds) == (attempts, timeout)


def proxy(**overrides):
    base = {"proxy_enabled": "1", "proxy_type": "http", "proxy_url": "proxy.corp", "proxy_port": "3128"}
    base.update(overrides)
    return base


@given(
    host=st.builds(
        lambda left, mark, right: left + mark + right,
        st.text(alphabet="abcxyz019.", min_size=1, max_size=8),
        st.sampled_from(["@", "#", "/", "?", ":", "%", " ", "\\", "\n", "\u202e", "[", "@evil.example#"]),
        st.text(alphabet="abcxyz019.", min_size=1, max_size=8),
    )
)
def test_proxy_host_that_would_change_the_url_is_refused(host):
    """Regression: 'user@evil.example#' built http://user@evil.example#.corp:3128, another host."""
    with pytest.raises(ConfigError) as info:
        proxy_url_from_conf(proxy(proxy_url=host))
    assert "proxy_url" in str(info.value) and host.strip() not in str(info.value)


@pytest.mark.parametrize("port", ["0", "65536", "80a", "٨٠", "8_0", "-1", "3128 3129", "true"])
def test_proxy_port_must_be_an_ascii_port_number(port):
    with pytest.raises(ConfigError, match="proxy_port"):
        proxy_url_from_conf(proxy(proxy_port=port))


@pytest.mark.parametrize(
    ("host", "url"), [("10.0.0.1", "http://10.0.0.1:3128"), ("[fd00::1]", "http://[fd00::1]:3128")]
)
def test_proxy_hosts_that_are_addresses(host, url):
    assert proxy_url_from_conf(proxy(proxy_url=host)) == url


@pytest.mark.parametrize("kind", ["HTTPS", "ftp", "gopher", "http;"])
def test_unknown_proxy_type_is_refused_without_echo(kind):
    with pytest.raises(ConfigError, match="proxy_type") as info:
        proxy_url_from_conf(proxy(proxy_type=kind))
    assert kind not in str(info.value)


def test_proxy_enabled_is_a_boolean_never_guessed():
    with pytest.raises(ConfigError, match="proxy_enabled"):
        proxy_url_from_conf(proxy(proxy_enabled="enabled"))


@given(
    st.sampled_from(["role_session_name", "aws_access_key_id", "default_region"]),
    st.sampled_from(["é" * 3, "session\u202ename", "a\nb", "AKIAIOSFODNN7EXAMPLE\u0661"]),
)
def test_account_names_are_ascii_whole_string(field, value):
    """Regression: ``\\w`` matched any Unicode letter in the session name and role ARN patterns."""
    with pytest.raises(ConfigError) as info:
        Account.from_conf("prod", conf(**{field: value}))
    assert value.strip() not in str(info.value)


def test_client_settings_bounds():
    with pytest.raises(ConfigError):
        ClientSettings.from_conf({"max_attempts": "50"})
    with pytest.raises(ConfigError):
        ClientSettings.from_conf({"retry_mode": "legacy"})
    assert ClientSettings.from_conf({"retry_mode": "standard", "max_attempts": "3"}).max_attempts == 3


def test_regions_parameter():
    assert parse_regions(" us-east-1, eu-west-1 ,us-east-1", "x") == ["us-east-1", "eu-west-1"]
    assert parse_regions("", "ap-south-1") == ["ap-south-1"]
    with pytest.raises(ConfigError, match="not AWS region names: 'Europe'"):
        parse_regions("Europe", "x")
    for bad in ("us-east-1\nx", "us-east-\u0661", "US-EAST-1", "us-east-1x"):
        with pytest.raises(ConfigError):
            parse_regions(f"eu-west-1,{bad}", "x")


@pytest.fixture
def handler_module(monkeypatch):
    """Import the REST handler with splunkd's ``splunk.admin`` stubbed, as Splunk's own UCC tests do."""
    admin = types.ModuleType("splunk.admin")

    class MConfigHandler:
        def __init__(self, *args, **kwargs):
            pass

    class ArgValidationException(Exception):
        pass

    admin.MConfigHandler = MConfigHandler
    admin.ArgValidationException = ArgValidationException
    admin.ACTION_CREATE, admin.ACTION_EDIT, admin.ACTION_LIST, admin.ACTION_REMOVE = 1, 2, 4, 8
    admin.CONTEXT_APP_ONLY = "app"
    admin.init = lambda *args, **kwargs: None
    splunk = types.ModuleType("splunk")
    splunk.admin = admin
    monkeypatch.setitem(sys.modules, "splunk", splunk)
    monkeypatch.setitem(sys.modules, "splunk.admin", admin)
    sys.modules.pop("ta_aws_iot_defender_account_handler", None)
    import ta_aws_iot_defender_account_handler as module

    yield module
    sys.modules.pop("ta_aws_iot_defender_account_handler", None)


def test_handler_reports_aws_refusal_without_the_secret(handler_module):
    def refuse(account, settings):
        raise AccountValidationError(
            f"Account '{account.name}': the secret access key does not match", "SignatureDoesNotMatch"
        )

    message = handler_module.validation_error("prod", conf(), validate=refuse)
    assert "does not match" in message and SECRET not in message


def test_handler_uses_stored_secrets_when_edit_sends_masked_ones(handler_module):
    seen = {}

    def accept(account, settings):
        seen["secret"] = account.secret_access_key
        return {"account": "123456789012"}

    stored = Account.from_conf("prod", conf())
    payload = conf(aws_secret_access_key="********")
    assert handler_module.validation_error("prod", payload, stored=lambda name: stored, validate=accept) is None
    assert seen["secret"] == SECRET


def test_handler_refuses_incomplete_accounts_before_calling_aws(handler_module):
    called = []
    message = handler_module.validation_error(
        "prod", conf(aws_access_key_id=""), validate=lambda a, s: called.append(a)
    )
    assert "both required" in message and not called


# A secret pasted into the wrong field must not come back in the refusal (shown in the UI and logged).
PASTED = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/PASTEDKEY"


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("role_arn", "role ARN"),
        ("default_region", "region"),
        ("aws_access_key_id", "access key ID"),
        ("role_session_name", "session name"),
        ("partition", "partition"),
        ("credential_source", "credential source"),
    ],
)
def test_refusals_never_echo_the_field_value(handler_module, field, named):
    called = []
    message = handler_module.validation_error("prod", conf(**{field: PASTED}), validate=lambda a, s: called.append(a))
    assert message and named in message, message
    assert PASTED not in message and "PASTEDKEY" not in message and not called
    for piece in PASTED.split("/"):
        assert piece not in message, (piece, message)


@pytest.mark.parametrize(
    ("partition", "region", "region_partition"),
    [
        ("aws-us-gov", "us-east-1", "aws"),
        ("aws-cn", "eu-west-1", "aws"),
        ("aws", "us-gov-west-1", "aws-us-gov"),
        ("aws", "cn-north-1", "aws-cn"),
        ("aws-us-gov", "cn-northwest-1", "aws-cn"),
    ],
)
def test_partition_and_region_must_agree(handler_module, partition, region, region_partition):
    called = []
    message = handler_module.validation_error(
        "prod", conf(partition=partition, default_region=region), validate=lambda a, s: called.append(a)
    )
    assert message is not None and not called
    assert f"partition '{region_partition}'" in message and f"'{partition}'" in message


@pytest.mark.parametrize(
    ("partition", "region"),
    [("aws", "us-east-1"), ("aws", "ap-southeast-7"), ("aws-us-gov", "us-gov-west-1"), ("aws-cn", "cn-north-1")],
)
def test_matching_partition_and_region_are_accepted(partition, region):
    assert Account.from_conf("prod", conf(partition=partition, default_region=region)).default_region == region


def test_response_plan_is_optional_checked_and_never_echoed():
    plan = "arn:aws:ssm-incidents::123456789012:response-plan/iot-device-compromise"
    assert Account.from_conf("prod", conf()).response_plan_arn is None
    assert Account.from_conf("prod", conf(response_plan_arn=plan)).response_plan_arn == plan
    with pytest.raises(ConfigError, match="response plan ARN") as info:
        Account.from_conf("prod", conf(response_plan_arn=PASTED))
    assert PASTED not in str(info.value)
    with pytest.raises(ConfigError, match="partition 'aws-cn'"):
        Account.from_conf("prod", conf(response_plan_arn=plan.replace("arn:aws:", "arn:aws-cn:")))


@pytest.mark.parametrize("region", ["us-east-1\n", "us-east-\u0661", "us-east-1 ", "xus-east-1"])
def test_region_re_kept_for_other_callers_matches_the_whole_ascii_name(region):
    """Regression: REGION_RE's ``$`` let a trailing newline through and ``\\d`` matched any Unicode digit."""
    from iot_defender.aws import REGION_RE

    assert REGION_RE.match(region) is None and REGION_RE.match("us-east-1")
