"""The script runner against throwaway apps built in tmp_path (stdlib-only scripts, a splunklib modular
input and a splunktaucclib alert action with their libraries vendored into the app's lib/ as symlinks)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import signal
import textwrap
from pathlib import Path

import pytest

from tests.harness import runner
from tests.harness.splunkd import SplunkdStandIn, SplunkHome

APP = "TA-harness-selftest"

PLAIN_INPUT = r"""
import json, os, sys, time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

SCHEME = ("<scheme><title>plain_input</title><description>harness</description>"
          "<use_external_validation>true</use_external_validation><streaming_mode>xml</streaming_mode>"
          "<use_single_instance>false</use_single_instance><endpoint><args>"
          "<arg name='count'><title>Count</title><required_on_create>true</required_on_create></arg>"
          "</args></endpoint></scheme>")


def main(argv):
    if len(argv) > 1 and argv[1] == "--scheme":
        sys.stdout.write(SCHEME)
        return 0
    root = ET.parse(sys.stdin).getroot()
    if len(argv) > 1 and argv[1] == "--validate-arguments":
        params = {p.get("name"): p.text for p in root.find("item")}
        if not (params.get("count") or "").isdigit():
            sys.stdout.write("<error><message>count must be a whole number</message></error>")
            return 1
        return 0
    try:
        import boto3  # noqa: F401
        boto = "importable"
    except ImportError:
        boto = "missing"
    log = os.path.join(os.environ["SPLUNK_HOME"], "var", "log", "splunk", "plain_input.log")
    out = sys.stdout
    out.write("<stream>")
    for stanza in root.find("configuration"):
        name = stanza.get("name")
        params = {p.get("name"): p.text for p in stanza}
        with open(log, "a") as handle:
            handle.write("starting %s leak=%s\n" % (name, params.get("leak", "")))
        sys.stderr.write("INFO plain_input starting %s\n" % name)
        sys.stderr.flush()
        pause_after = int(params.get("pause_after") or 0)
        for i in range(int(params["count"])):
            data = json.dumps({
                "i": i, "boto3": boto, "cwd": os.getcwd(), "params": params,
                "aws_env": sorted(k for k in os.environ if k.startswith("AWS_")),
                "sys_path": sys.path, "home": os.environ.get("HOME"),
            })
            out.write("<event stanza=%s unbroken=\"1\"><time>%d.250</time><sourcetype>harness:plain</sourcetype>"
                      "<data>%s</data><done/></event>" % (quoteattr(name), 1700000000 + i, escape(data)))
            out.flush()
            if pause_after and i + 1 == pause_after:
                out.write("<event stanza=%s unbroken=\"1\"><data>half an ev" % quoteattr(name))
                out.flush()
                time.sleep(60)
    out.write("</stream>")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""

SDK_INPUT = r"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from splunklib import modularinput as smi


class SdkInput(smi.Script):
    def get_scheme(self):
        scheme = smi.Scheme("sdk_input")
        scheme.use_external_validation = True
        scheme.add_argument(smi.Argument("count", required_on_create=True))
        return scheme

    def validate_input(self, definition):
        if int(definition.parameters["count"]) > 100:
            raise ValueError("count too large")

    def stream_events(self, inputs, ew):
        kv = self.service.kvstore
        if "sdk_checkpoints" not in kv:
            kv.create("sdk_checkpoints")
        data = kv["sdk_checkpoints"].data
        for name, params in inputs.inputs.items():
            for i in range(int(params["count"])):
                ew.write_event(smi.Event(data='{"n": %d, "text": "<&>"}' % i, stanza=name, time="%.3f" % (1.7e9 + i),
                                         index=params.get("index"), sourcetype="harness:sdk"))
            # a multi-part event: pieces without <done/> are one event
            ew.write_event(smi.Event(data="part one ", stanza=name, done=False))
            ew.write_event(smi.Event(data="part two", stanza=name, done=True))
            data.batch_save({"_key": name, "count": params["count"]})
        ew.log("INFO", "sdk_input done")


if __name__ == "__main__":
    sys.exit(SdkInput().run(sys.argv))
"""

PLAIN_ALERT = r"""
import csv, gzip, json, os, sys, time

BREAKER = "==##~~##~~  1E8N3D4E6V5E7N2T9 ~~##~~##=="


def main(argv):
    if len(argv) < 2 or argv[1] != "--execute":
        sys.stderr.write("expected --execute\n")
        return 1
    payload = json.loads(sys.stdin.read())
    config = payload["configuration"]
    with gzip.open(payload["results_file"], "rt") as handle:
        rows = list(csv.DictReader(handle))
    events = []
    for rid, row in enumerate(rows):
        raw = json.dumps({"thing": row["thing_name"], "tags": row.get("tags", "").split("\n"),
                          "mv": row.get("__mv_tags", ""), "mode": config.get("mode"), "dry_run": config.get("dry_run")})
        idline = '***Common Action Model*** orig_action_name="plain_alert" orig_sid="%s" orig_rid="%d" sourcetype="harness:action"' % (payload["sid"], rid)
        events.append(idline + "\n" + raw)
    events.append('%d, search_name="%s", status="done", note="quote \\" inside"' % (time.time(), payload["search_name"]))
    header = '***SPLUNK*** index="summary" source="plain_alert"'
    spool = os.path.join(os.environ["SPLUNK_HOME"], "var", "spool", "splunk", "%d_1.stash_common_action_model" % time.time())
    with open(spool, "w") as handle:
        handle.write(header + "\n" + BREAKER + "\n" + ("\n" + BREAKER + "\n").join(events))
    log = os.path.join(os.environ["SPLUNK_HOME"], "var", "log", "splunk", "plain_alert_modalert.log")
    with open(log, "a") as handle:
        handle.write("sid=%s rows=%d keys=%s\n" % (payload["sid"], len(rows), ",".join(sorted(payload))))
    return int(config.get("exit_code") or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""

AOB_ALERT = r"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import json
from splunktaucclib.alert_actions_base import ModularAlertBase


class AobAlert(ModularAlertBase):
    def process_event(self, *args, **kwargs):
        self.log_info("processing with level %s" % self.get_log_level())
        for result in self.get_events():
            self.addevent(json.dumps({"thing": result["thing_name"], "account": self.get_param("account")}),
                          sourcetype="harness:aob")
        self.writeevents(index="main", source="aob_alert")
        return 0


if __name__ == "__main__":
    sys.exit(AobAlert("TA-harness-selftest", "aob_alert").run(sys.argv))
"""

GLOBAL_CONFIG = {
    "meta": {"name": APP, "restRoot": "ta_harness_selftest"},
    "pages": {
        "configuration": {
            "tabs": [
                {"name": "logging", "entity": [{"field": "loglevel"}]},
                {"name": "proxy", "entity": [{"field": "proxy_enabled"}, {"field": "proxy_url"}]},
            ]
        }
    },
}

VENDORED = (
    "splunklib",
    "solnlib",
    "splunktaucclib",
    "defusedxml",
    "sortedcontainers",
    "urllib3",
    "requests",
    "idna",
    "charset_normalizer",
    "certifi",
)


def _vendor(lib: Path, modules) -> None:
    lib.mkdir(parents=True, exist_ok=True)
    for module in modules:
        origin = Path(importlib.util.find_spec(module).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (lib / source.name).symlink_to(source, target_is_directory=source.is_dir())


@pytest.fixture(scope="module")
def built_app(tmp_path_factory) -> Path:
    app = tmp_path_factory.mktemp("build") / APP
    for name, code in {
        "plain_input": PLAIN_INPUT,
        "sdk_input": SDK_INPUT,
        "plain_alert": PLAIN_ALERT,
        "aob_alert": AOB_ALERT,
    }.items():
        path = app / "bin" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(code))
    (app / "default").mkdir()
    (app / "default" / "app.conf").write_text("[launcher]\nversion = 0.0.1\n[ui]\nlabel = Harness self-test\n")
    (app / "default" / "inputs.conf").write_text(
        "[plain_input]\ninterval = 60\nindex = iot\npython.version = python3\n\n[sdk_input]\ninterval = 30\n"
    )
    (app / "default" / "alert_actions.conf").write_text(
        "[plain_alert]\nis_custom = 1\nparam.mode = report\nparam.dry_run = 0\n\n[aob_alert]\nparam.account =\n"
    )
    (app / "default" / "ta_harness_selftest_settings.conf").write_text("[logging]\nloglevel = DEBUG\n")
    gc = app / "appserver" / "static" / "js" / "build" / "globalConfig.json"
    gc.parent.mkdir(parents=True)
    gc.write_text(json.dumps(GLOBAL_CONFIG))
    _vendor(app / "lib", VENDORED)
    return app


@pytest.fixture
def env(built_app, tmp_path, monkeypatch):
    monkeypatch.delenv("SPLUNK_HOME", raising=False)
    with SplunkdStandIn() as splunkd:
        home = SplunkHome.create(tmp_path, app_dir=built_app, splunkd=splunkd)
        yield home, splunkd


# ------------------------------------------------------------------------------------------- modular inputs
def test_scheme_and_validation(env):
    home, splunkd = env
    scheme = runner.run_scheme(home, "plain_input")
    assert scheme.findtext("title") == "plain_input"
    assert runner.scheme_arguments(scheme)["count"]["required_on_create"] is True
    ok, message = runner.run_validate(home, "plain_input", {"count": "3"}, standin=splunkd)
    assert (ok, message) == (True, "")
    ok, message = runner.run_validate(home, "plain_input", {"count": "three"}, standin=splunkd)
    assert (ok, message) == (False, "count must be a whole number")
    assert runner.scheme_arguments(runner.run_scheme(home, "sdk_input"))["count"]["required_on_create"]
    result = runner.run_validate(home, "sdk_input", {"count": "500"}, standin=splunkd)
    assert not result.ok and result.message == "count too large"


def test_input_streams_events_as_splunkd_sees_them(env):
    home, splunkd = env
    result = runner.run_input(
        home,
        "plain_input",
        {"a": {"count": 3}, "b": {"count": "1", "index": "other"}},
        standin=splunkd,
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "x"},
    )
    assert result.exit_code == 0 and result.stream_error is None and not result.killed
    assert [(e["stanza"], e["event"]["i"]) for e in result.events] == [
        ("plain_input://a", 0),
        ("plain_input://a", 1),
        ("plain_input://a", 2),
        ("plain_input://b", 0),
    ]
    first = result.events[0]
    assert first["time"] == 1700000000.25
    assert (first["sourcetype"], first["source"], first["host"], first["index"]) == (
        "harness:plain",
        "plain_input://a",
        splunkd.server_name,
        "iot",
    )  # index from the app's inputs.conf
    assert result.events[3]["index"] == "other"
    # splunkd merges [default] and [plain_input] of inputs.conf into each stanza
    assert first["event"]["params"] == {
        "count": "3",
        "interval": "60",
        "index": "iot",
        "python.version": "python3",
        "host": splunkd.server_name,
    }
    # only what the caller passed reaches the script: no inherited AWS_* variables, an empty $HOME
    assert first["event"]["aws_env"] == ["AWS_ENDPOINT_URL", "AWS_REGION"]
    assert first["event"]["home"] == str(home.process_home)
    assert first["event"]["cwd"] == str(home.root)
    assert "INFO plain_input starting plain_input://a" in result.stderr
    assert any("plain_input starting" in line for line in runner.collect_log_files(home)["splunkd.log"])
    assert result.duration < 10


def test_isolation_only_stdlib_app_and_bundled_splunk(env, tmp_path):
    home, splunkd = env
    event = runner.run_input(home, "plain_input", {"a": {"count": 1}}, standin=splunkd).events[0]["event"]
    assert event["boto3"] == "missing"  # the harness venv has boto3; the script's interpreter must not
    assert not any("site-packages" in p and p != str(home.site_packages) for p in event["sys_path"])
    assert runner.run_python("import boto3", home=home).returncode != 0
    assert runner.run_python("import solnlib", home=home).returncode != 0
    assert runner.run_python("import splunk.rest, splunk.clilib.cli_common", home=home).returncode == 0
    vendored = tmp_path / "vendored"
    _vendor(vendored, ["boto3", "botocore", "jmespath", "dateutil", "six", "s3transfer", "urllib3"])
    proc = runner.run_python("import boto3; print(boto3.__file__)", home=home, sys_path=[vendored])
    assert proc.returncode == 0 and proc.stdout.startswith(str(vendored))


def test_kill_after_events_keeps_exactly_the_complete_events(env):
    home, splunkd = env
    result = runner.run_input(
        home, "plain_input", {"a": {"count": 10, "pause_after": 4}}, standin=splunkd, kill_after_events=4, timeout=20
    )
    assert result.killed and result.exit_code == -signal.SIGKILL
    assert [e["event"]["i"] for e in result.events] == [0, 1, 2, 3]
    assert result.duration < 10


def test_kill_after_seconds_and_timeout(env):
    home, splunkd = env
    result = runner.run_input(
        home, "plain_input", {"a": {"count": 10, "pause_after": 2}}, standin=splunkd, kill_after=1.0
    )
    assert result.killed and not result.timed_out and len(result.events) == 2
    assert result.stdout.endswith("half an ev")  # written, but an incomplete event is never indexed
    assert 0.9 <= result.duration < 5
    result = runner.run_input(home, "plain_input", {"a": {"count": 10, "pause_after": 1}}, standin=splunkd, timeout=1.0)
    assert result.timed_out and not result.killed and len(result.events) == 1


def test_splunklib_input_uses_session_key_and_writes_kv(env):
    home, splunkd = env
    result = runner.run_input(home, "sdk_input", {"s1": {"count": 2}}, standin=splunkd)
    assert result.exit_code == 0, result.stderr
    assert [e["event"] for e in result.events] == [
        {"n": 0, "text": "<&>"},
        {"n": 1, "text": "<&>"},
        "part one part two",
    ]
    assert result.events[0]["sourcetype"] == "harness:sdk" and result.events[0]["time"] == 1.7e9
    assert result.events[2]["sourcetype"] == "sdk_input"  # no sourcetype anywhere: the input kind
    assert splunkd.kv_collection("sdk_checkpoints") == [{"_key": "sdk_input://s1", "count": "2", "_user": "nobody"}]
    assert result.stderr == ["INFO sdk_input done"]


# -------------------------------------------------------------------------------------------- alert actions
def test_alert_payload_results_and_stash_events(env):
    home, splunkd = env
    results = [{"thing_name": "sensor-1", "tags": ["a", "b"]}, {"thing_name": "sensor-2", "tags": "c"}]
    result = runner.run_alert(
        home,
        "plain_alert",
        {"dry_run": True},
        results,
        standin=splunkd,
        search_name="IoT violation",
        cam={"task": ["block"]},
    )
    assert result.exit_code == 0, result.stderr
    payload = result.payload
    assert payload["configuration"] == {"mode": "report", "dry_run": "1", "_cam": '{"task": ["block"]}'}
    assert payload["server_uri"] == splunkd.uri and payload["session_key"] == splunkd.session_key
    assert payload["result"] == {"thing_name": "sensor-1", "tags": "a\nb"}
    with gzip.open(payload["results_file"], "rt") as handle:
        assert handle.readline().strip() == "thing_name,tags,__mv_tags"
    actions = [e for e in result.events if e["sourcetype"] == "harness:action"]
    assert [a["event"]["thing"] for a in actions] == ["sensor-1", "sensor-2"]
    assert actions[0]["event"]["tags"] == ["a", "b"] and actions[0]["event"]["mv"] == "$a$;$b$"
    assert actions[0]["orig_sid"] == payload["sid"] and actions[1]["orig_rid"] == "1"
    assert actions[0]["index"] == "summary" and actions[0]["source"] == "plain_alert"
    summary = next(e for e in result.events if e["sourcetype"] == "stash")
    assert summary["fields"]["search_name"] == "IoT violation" and summary["fields"]["note"] == 'quote " inside'
    assert any(f"sid={payload['sid']} rows=2" in line for line in result.log_lines)
    failed = runner.run_alert(home, "plain_alert", {"exit_code": 3}, results, standin=splunkd)
    assert failed.exit_code == 3 and len(failed.log_lines) == 1  # only this run's log lines


def test_splunktaucclib_alert_end_to_end(env):
    home, splunkd = env
    result = runner.run_alert(
        home, "aob_alert", {"account": "prod"}, [{"thing_name": "t1"}, {"thing_name": "t2"}], standin=splunkd
    )
    assert result.exit_code == 0, result.stderr
    assert [(e["sourcetype"], e["event"]) for e in result.events] == [
        ("harness:aob", {"thing": "t1", "account": "prod"}),
        ("harness:aob", {"thing": "t2", "account": "prod"}),
    ]
    assert result.events[0]["index"] == "main" and result.events[0]["orig_action_name"] == "aob_alert"
    assert any("processing with level DEBUG" in line for line in result.log_lines)
    assert any("Invoking modular action" in line for line in result.log_lines)
    # Setup_Util read the log level through UCC's settings endpoint with decryption requested
    settings = splunkd.requests_to(r"/ta_harness_selftest_settings/logging$", "GET")
    assert settings and settings[0].status == 200 and settings[0].query.get("--cred--") == "1"
    assert splunkd.unknown == []


def test_log_collection_finds_leaked_secrets(env):
    home, splunkd = env
    splunkd.create_account(
        "prod",
        {"aws_access_key_id": "AKIAHARNESS"},
        {"aws_secret_access_key": "t0p-s3cret-v4lue"},
        conf="ta_harness_selftest_account",
        app=APP,
    )
    runner.run_input(home, "plain_input", {"clean": {"count": 1}}, standin=splunkd)
    assert runner.find_secrets(runner.collect_logs(home), splunkd.secrets()) == []
    runner.run_input(home, "plain_input", {"leaky": {"count": 1, "leak": "t0p-s3cret-v4lue"}}, standin=splunkd)
    assert runner.find_secrets(runner.collect_logs(home), splunkd.secrets()) == ["t0p-s3cret-v4lue"]
