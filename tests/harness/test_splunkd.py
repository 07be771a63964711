"""The splunkd stand-in driven through the real libraries (solnlib, splunklib) in-process, plus the fake
SPLUNK_HOME's btool shim and ``splunk`` module stand-in."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests
from solnlib import conf_manager, credentials
from solnlib.modular_input.checkpointer import KVStoreCheckpointer
from splunklib import binding, client

from tests.harness import runner
from tests.harness.splunkd import (
    APP_ID,
    CRED_SEP,
    KV_NOT_READY,
    PLACEHOLDER,
    SplunkdStandIn,
    SplunkHome,
    credential_realm,
)

ACCOUNT_CONF = "ta_aws_iot_defender_account"
SETTINGS_CONF = "ta_aws_iot_defender_settings"
REALM = credential_realm(ACCOUNT_CONF)

MINI_GLOBAL_CONFIG = {
    "meta": {"name": APP_ID, "restRoot": "ta_aws_iot_defender"},
    "pages": {
        "configuration": {
            "tabs": [
                {
                    "name": "account",
                    "table": {},
                    "entity": [
                        {"field": "name"},
                        {"field": "aws_access_key_id"},
                        {"field": "aws_secret_access_key", "encrypted": True},
                    ],
                },
                {"name": "logging", "entity": [{"field": "loglevel"}]},
                {
                    "name": "proxy",
                    "entity": [{"field": "proxy_url"}, {"field": "proxy_password", "encrypted": True}],
                },
            ]
        },
        "inputs": {"services": [{"name": "iot_defender_violations", "entity": [{"field": "account"}]}]},
    },
}


@pytest.fixture
def splunkd(monkeypatch):
    # in-process clients must not try splunkd discovery through a (missing) Splunk install
    monkeypatch.delenv("SPLUNK_HOME", raising=False)
    with SplunkdStandIn() as standin:
        yield standin


def _cfm(splunkd: SplunkdStandIn, conf: str = ACCOUNT_CONF) -> conf_manager.ConfManager:
    return conf_manager.ConfManager(
        splunkd.session_key,
        APP_ID,
        scheme="http",
        host="127.0.0.1",
        port=splunkd.port,
        realm=credential_realm(conf),
    )


def _service(splunkd: SplunkdStandIn, **kwargs) -> client.Service:
    kwargs.setdefault("token", splunkd.session_key)
    return client.connect(
        scheme="http", host="127.0.0.1", port=splunkd.port, app=APP_ID, owner="nobody", autologin=True, **kwargs
    )


# ---------------------------------------------------------------------------------------------------- conf
def test_conf_manager_returns_decrypted_account(splunkd):
    splunkd.create_account(
        "prod",
        {"credential_source": "keys", "aws_access_key_id": "AKIAHARNESS0001", "default_region": "eu-west-1"},
        {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYHARNESS", "external_id": ""},
    )
    conf = _cfm(splunkd).get_conf(ACCOUNT_CONF)
    accounts = conf.get_all()
    assert set(accounts) == {"prod"}
    prod = accounts["prod"]
    assert prod["aws_secret_access_key"] == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYHARNESS"
    assert prod["aws_access_key_id"] == "AKIAHARNESS0001"
    assert prod["eai:appName"] == APP_ID
    assert prod["external_id"] is None  # splunkd sends empty values as empty elements; splunklib reads None
    assert conf.get("prod", only_current_app=True)["default_region"] == "eu-west-1"
    # on the wire: placeholder in conf, JSON in storage/passwords under UCC's realm, chunked like solnlib
    assert splunkd.get_conf(ACCOUNT_CONF, "prod")["aws_secret_access_key"] == PLACEHOLDER
    assert json.loads(splunkd.get_credential(REALM, "prod")) == {
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYHARNESS"
    }
    raw = credentials.CredentialManager(
        splunkd.session_key, APP_ID, realm=REALM, scheme="http", host="127.0.0.1", port=splunkd.port
    ).get_raw_passwords_in_realm()
    assert {p.username for p in raw} == {f"prod{CRED_SEP}1", f"prod{CRED_SEP}2"}
    assert "wJalrXUtnFEMI/K7MDENG/bPxRfiCYHARNESS" in splunkd.secrets()


def test_conf_manager_writes_round_trip_and_missing_things(splunkd):
    cfm = _cfm(splunkd)
    with pytest.raises(conf_manager.ConfManagerException):
        cfm.get_conf(ACCOUNT_CONF)  # properties/<conf> is 404 until the conf exists somewhere
    conf = cfm.create_conf(ACCOUNT_CONF)
    conf.update(
        "dev", {"aws_access_key_id": "AKIADEV", "aws_secret_access_key": "dev-secret-1"}, ["aws_secret_access_key"]
    )
    assert splunkd.get_conf(ACCOUNT_CONF, "dev") == {
        "aws_access_key_id": "AKIADEV",
        "aws_secret_access_key": PLACEHOLDER,
    }
    assert _cfm(splunkd).get_conf(ACCOUNT_CONF).get("dev")["aws_secret_access_key"] == "dev-secret-1"
    with pytest.raises(conf_manager.ConfStanzaNotExistException):
        conf.get("nope")
    conf.delete("dev")
    assert splunkd.get_conf(ACCOUNT_CONF, "dev") is None
    assert splunkd.get_credential(REALM, "dev") is None


def test_settings_conf_served_with_current_app_filter(splunkd):
    splunkd.set_conf(SETTINGS_CONF, "logging", {"loglevel": "DEBUG"})
    splunkd.set_conf(SETTINGS_CONF, "logging", {"loglevel": "ERROR"}, app="other_app")
    stanzas = _cfm(splunkd, SETTINGS_CONF).get_conf(SETTINGS_CONF).get_all(only_current_app=True)
    assert stanzas["logging"]["loglevel"] == "DEBUG"
    assert stanzas["logging"]["eai:appName"] == APP_ID


# ------------------------------------------------------------------------------------------------- KV store
def test_kvstore_checkpointer_round_trip(splunkd):
    ck = KVStoreCheckpointer(
        "ta_aws_iot_defender_checkpoints",
        splunkd.session_key,
        APP_ID,
        scheme="http",
        host="127.0.0.1",
        port=splunkd.port,
    )
    assert ck.get("violations:prod:us-east-1") is None
    ck.update("violations:prod:us-east-1", {"window_end": 1700000000, "seen": ["a", "b"]})
    assert ck.get("violations:prod:us-east-1") == {"window_end": 1700000000, "seen": ["a", "b"]}
    ck.batch_update(
        [
            {"_key": "audit:prod:us-east-1", "state": {"tasks": ["t1"]}},
            {"_key": "violations:prod:us-east-1", "state": {"window_end": 1700000300}},
        ]
    )
    assert ck.get("violations:prod:us-east-1") == {"window_end": 1700000300}
    docs = {d["_key"]: d for d in splunkd.kv_collection("ta_aws_iot_defender_checkpoints")}
    assert json.loads(docs["audit:prod:us-east-1"]["state"]) == {"tasks": ["t1"]}
    ck.delete("audit:prod:us-east-1")
    ck.delete("never-existed")  # 404 is swallowed, as with splunkd
    assert ck.get("audit:prod:us-east-1") is None
    assert splunkd.unknown == []


def test_splunklib_kv_collections_and_queries(splunkd):
    service = _service(splunkd)
    service.kvstore.create("things", fields={"score": "number"})
    assert "things" in service.kvstore
    data = service.kvstore["things"].data
    for i in range(6):
        data.insert({"_key": f"t{i}", "thing": f"thing-{i}", "score": i, "group": "odd" if i % 2 else "even"})
    assert data.query_by_id("t3")["thing"] == "thing-3"
    assert [
        d["_key"] for d in data.query(query={"$and": [{"score": {"$gt": 1}}, {"score": {"$lt": 5}}]}, sort="score:-1")
    ] == ["t4", "t3", "t2"]
    assert {d["_key"] for d in data.query(query={"$or": [{"group": "even"}, {"score": 5}]})} == {"t0", "t2", "t4", "t5"}
    assert len(data.query(limit=2, skip=1, sort="score")) == 2
    data.update("t0", {"thing": "renamed", "score": 100})
    assert data.query_by_id("t0") == {"_key": "t0", "_user": "nobody", "thing": "renamed", "score": 100}
    data.batch_save({"_key": "t9", "score": 9}, {"_key": "t1", "score": -1})
    assert data.query_by_id("t1")["score"] == -1
    assert [r[0]["_key"] for r in data.batch_find({"query": {"score": 9}})] == ["t9"]
    data.delete(json.dumps({"group": "odd"}))
    # batch_save replaced t1 whole (no "group" any more), so only t3 and t5 matched
    assert {d["_key"] for d in splunkd.kv_collection("things")} == {"t0", "t1", "t2", "t4", "t9"}
    data.delete_by_id("t9")
    with pytest.raises(binding.HTTPError) as missing:
        data.query_by_id("t9")
    assert missing.value.status == 404
    service.kvstore.delete("things")
    assert "things" not in service.kvstore


def test_kvstore_503_is_visible_then_recovers(splunkd):
    service = _service(splunkd)
    service.kvstore.create("cp")
    data = service.kvstore["cp"].data
    splunkd.faults.kvstore_unavailable_for(1)
    with pytest.raises(binding.HTTPError) as error:
        data.insert({"_key": "k"})
    assert error.value.status == 503
    assert KV_NOT_READY in error.value.body.decode()
    data.insert({"_key": "k"})  # recovered
    assert splunkd.requests_to(r"/storage/collections/data/cp$", "POST")[-2].status == 503
    # solnlib's requests adapter retries 5xx itself (urllib3 Retry, backoff 0.3 s): short outages are absorbed
    ck = KVStoreCheckpointer("cp", splunkd.session_key, APP_ID, scheme="http", host="127.0.0.1", port=splunkd.port)
    splunkd.faults.kvstore_unavailable_for(2)
    started = time.monotonic()
    ck.update("k", 1)
    assert ck.get("k") == 1
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------------------------------- auth
def test_wrong_session_key_is_401(splunkd):
    with pytest.raises(binding.HTTPError) as error:
        _service(splunkd, token="not-the-key").kvstore.list()
    assert error.value.status == 401
    raw = requests.get(f"{splunkd.uri}/services/server/info", headers={"Authorization": "Splunk nope"}, timeout=5)
    assert raw.status_code == 401
    assert "call not properly authenticated" in raw.text
    assert splunkd.requests[-1].status == 401


def test_login_and_server_info(splunkd):
    service = client.connect(scheme="http", host="127.0.0.1", port=splunkd.port, username="admin", password="changeme")
    assert service.info["version"].startswith("9.")
    assert service.splunk_version >= (9, 0)
    with pytest.raises(binding.AuthenticationError):
        client.connect(scheme="http", host="127.0.0.1", port=splunkd.port, username="admin", password="bad")


# ------------------------------------------------------------------------------------- other REST surfaces
def test_search_filter_pagination_and_messages(splunkd):
    for i in range(35):
        splunkd.set_conf("harness", f"stanza{i:02d}", {"k": str(i)})
    service = _service(splunkd)
    conf = service.confs["harness"]
    raw = requests.get(
        f"{splunkd.uri}/servicesNS/nobody/{APP_ID}/configs/conf-harness",
        params={"output_mode": "json"},
        headers={"Authorization": f"Splunk {splunkd.session_key}"},
        timeout=5,
    ).json()
    assert len(raw["entry"]) == 30 and raw["paging"]["total"] == 35  # splunkd's default count
    assert len(conf.list()) == 35  # splunklib asks for count=-1
    # search= is a case-insensitive substring match, so name=stanza1 also matches stanza10..stanza19
    assert len(conf.list(search="name=STANZA1")) == 10
    service.messages.create("ta_aws_iot_defender_bad_account", value="AWS account 'prod' rejected", severity="error")
    assert splunkd.messages["ta_aws_iot_defender_bad_account"]["severity"] == "error"


def test_ucc_rest_endpoints_emulated(splunkd):
    splunkd.register_global_config(APP_ID, MINI_GLOBAL_CONFIG)
    headers = {"Authorization": f"Splunk {splunkd.session_key}"}
    base = f"{splunkd.uri}/servicesNS/nobody/{APP_ID}"
    created = requests.post(
        f"{base}/ta_aws_iot_defender_account",
        headers=headers,
        timeout=5,
        data={
            "name": "prod",
            "aws_access_key_id": "AKIAUCC",
            "aws_secret_access_key": "ucc-secret-value",
            "output_mode": "json",
        },
    )
    assert created.status_code == 201
    assert created.json()["entry"][0]["content"]["aws_secret_access_key"] == PLACEHOLDER
    assert splunkd.get_conf(ACCOUNT_CONF, "prod")["aws_secret_access_key"] == PLACEHOLDER
    clear = requests.get(
        f"{base}/ta_aws_iot_defender_account/prod",
        headers=headers,
        timeout=5,
        params={"output_mode": "json", "--cred--": "1"},
    ).json()
    assert clear["entry"][0]["content"]["aws_secret_access_key"] == "ucc-secret-value"
    # solnlib reads what the UCC endpoint wrote
    assert _cfm(splunkd).get_conf(ACCOUNT_CONF).get("prod")["aws_secret_access_key"] == "ucc-secret-value"
    settings = requests.get(
        f"{base}/ta_aws_iot_defender_settings",
        headers=headers,
        timeout=5,
        params={"output_mode": "json", "count": "0", "--cred--": "1"},
    ).json()
    assert {e["name"] for e in settings["entry"]} == {"logging", "proxy"}
    requests.post(
        f"{base}/ta_aws_iot_defender_settings/logging", headers=headers, timeout=5, data={"loglevel": "WARNING"}
    )
    assert splunkd.get_conf(SETTINGS_CONF, "logging")["loglevel"] == "WARNING"
    requests.post(
        f"{base}/ta_aws_iot_defender_iot_defender_violations",
        headers=headers,
        timeout=5,
        data={"name": "v1", "account": "prod", "interval": "300"},
    )
    assert splunkd.get_conf("inputs", "iot_defender_violations://v1")["account"] == "prod"


# ------------------------------------------------------------------------------------------ fake SPLUNK_HOME
def test_home_btool_shim_and_splunk_module(splunkd, tmp_path, monkeypatch):
    home = SplunkHome.create(tmp_path, app_dir=None, splunkd=splunkd)
    home.apps_dir.joinpath("TA-x", "default").mkdir(parents=True)
    home.write_conf("inputs", "x_input", {"interval": "60", "index": "main"}, app="TA-x", level="default")
    home.write_conf("inputs", "x_input", {"index": "iot"}, app="TA-x")
    out = subprocess.run(
        [str(home.splunk_bin), "cmd", "btool", "inputs", "list", "--app=TA-x", "--debug"],
        capture_output=True,
        text=True,
        check=True,
        env=home.env(),
    ).stdout
    assert "TA-x/local/inputs.conf" in out and "index = iot" in out and "interval = 60" in out
    # solnlib's btool path (splunkenv.get_conf_stanzas) uses the shim
    monkeypatch.setenv("SPLUNK_HOME", str(home.root))
    from solnlib import splunkenv

    assert splunkenv.get_conf_stanzas("server")["sslConfig"]["enableSplunkdSSL"] == "false"
    assert splunkenv.get_conf_stanzas("inputs", "TA-x")["x_input"]["index"] == "iot"
    # Splunk's bundled splunk module, inside the isolated interpreter scripts get
    code = (
        "import json, splunk.rest as rest\n"
        "from splunk.clilib.cli_common import getConfKeyValue\n"
        "from splunk.clilib.bundle_paths import make_splunkhome_path\n"
        "from splunk.util import normalizeBoolean, mktimegm\n"
        f"r, c = rest.simpleRequest('/services/server/info', sessionKey={splunkd.session_key!r}, "
        "getargs={'output_mode': 'json'})\n"
        "print(json.dumps([r.status, json.loads(c)['entry'][0]['content']['serverName'],"
        " getConfKeyValue('server', 'general', 'serverName'), make_splunkhome_path(['var', 'log', 'splunk']),"
        " normalizeBoolean('Yes'), normalizeBoolean('maybe'), mktimegm((1970, 1, 2, 0, 0, 0, 0, 0, 0))]))\n"
        "try:\n    rest.simpleRequest('/services/nope', sessionKey='bad')\n"
        "except Exception as e:\n    print(type(e).__name__)\n"
    )
    proc = runner.run_python(code, home=home)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert json.loads(first) == [200, splunkd.server_name, splunkd.server_name, str(home.log_dir), True, "maybe", 86400]
    assert second == "AuthenticationFailed"


def test_conf_writes_reach_the_home_on_disk(splunkd, tmp_path):
    home = SplunkHome.create(tmp_path, app_dir=None, splunkd=splunkd)
    home.apps_dir.joinpath(APP_ID, "default").mkdir(parents=True)
    splunkd.set_conf(SETTINGS_CONF, "logging", {"loglevel": "ERROR"})
    assert home.read_conf(SETTINGS_CONF, APP_ID)["logging"]["loglevel"] == "ERROR"
    assert splunkd.get_conf("web", "settings", app="system")["mgmtHostPort"] == f"127.0.0.1:{splunkd.port}"


def test_generic_faults_latency_and_request_log(splunkd):
    service = _service(splunkd)
    splunkd.faults.fail(r"/configs/conf-harness", status=500, times=1)
    splunkd.set_conf("harness", "s", {"k": "v"})
    with pytest.raises(binding.HTTPError) as error:
        service.confs["harness"].list()
    assert error.value.status == 500
    assert service.confs["harness"].list()[0].content["k"] == "v"
    splunkd.faults.set_latency(0.3, r"/server/info")
    started = time.monotonic()
    service.info  # noqa: B018 - one request
    assert time.monotonic() - started >= 0.3
    splunkd.faults.clear()
    assert [r.status for r in splunkd.requests_to(r"/configs/conf-harness$")] == [500, 200]


def test_reload_from_disk_and_environment_helper(tmp_path):
    from tests.harness.splunkd import splunk_environment

    with splunk_environment(tmp_path, app_dir=None) as (splunkd, home):
        home.write_conf("server", "general", {"serverName": "renamed"})
        assert splunkd.get_conf("server", "general", app="system")["serverName"] == "harness-splunk"
        splunkd.reload_from_disk()
        assert splunkd.get_conf("server", "general", app="system")["serverName"] == "renamed"


def test_users_roles_and_capabilities_from_authorize_conf(splunkd):
    def context(key):
        raw = requests.get(
            f"{splunkd.uri}/services/authentication/current-context",
            params={"output_mode": "json"},
            headers={"Authorization": f"Splunk {key}"},
            timeout=5,
        )
        assert raw.status_code == 200
        return raw.json()["entry"][0]["content"]

    admin = context(splunkd.session_key)
    assert admin["username"] == "admin" and "admin_all_objects" in admin["capabilities"]
    assert "iot_defender_respond" not in admin["capabilities"]
    analyst = splunkd.add_user("analyst", roles=["user"])
    assert context(analyst) == {
        "username": "analyst",
        "realname": "analyst",
        "roles": ["user"],
        "capabilities": ["search"],
    }
    # an app's authorize.conf grants a capability to a role, as splunkd merges it
    splunkd.set_conf("authorize", "capability::iot_defender_respond", {}, app=APP_ID)
    splunkd.set_conf("authorize", "role_admin", {"iot_defender_respond": "enabled"}, app=APP_ID)
    assert "iot_defender_respond" in context(splunkd.session_key)["capabilities"]
    assert "iot_defender_respond" not in context(analyst)["capabilities"]
    splunkd.add_role("soc_responder", ["iot_defender_respond"])
    responder = splunkd.add_user("responder", roles=["user", "soc_responder"])
    assert context(responder)["capabilities"] == ["iot_defender_respond", "search"]
    # system/local wins over an app's default, and "disabled" takes the capability away
    splunkd.set_conf("authorize", "role_admin", {"iot_defender_respond": "disabled"}, app="system")
    assert "iot_defender_respond" not in splunkd.capabilities_of("admin")
