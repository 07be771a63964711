"""The transform's accelerated readers read exactly what the standard library reads.

Records are read by msgspec where it is installed (else orjson, else ``json``) and their base64 by pybase64 (else
``binascii``); the Lambda ships all three accelerators, Splunk-side tests and a ``VENDOR_ORJSON=0`` build run without
them. Each property compares one reader against ``json`` (strict: no NaN/Infinity, no overflowing float) and
``binascii.a2b_base64(strict_mode=True)``: the same documents accepted, read to the same values of the same types
(``1`` vs ``1.0`` vs ``True``, ``-0.0``, integers beyond 64 bits, key order), the same errors otherwise.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.infra.conftest import load_transform

TRANSFORM = load_transform()
READERS = ("msgspec", "orjson", "json")


def exact(value: Any) -> Any:
    """``value`` with every type spelled out, so that equal means the same JSON reading (key order included)."""
    if type(value) is dict:
        return ("dict", tuple((key, exact(item)) for key, item in value.items()))
    if type(value) is list:
        return ("list", tuple(exact(item) for item in value))
    return (type(value).__name__, repr(value))


def outcome(call: Any) -> Any:
    try:
        return exact(call())
    except Exception as exc:  # the same kind of refusal either way
        return ("error", type(exc).__name__, str(exc) if isinstance(exc, TRANSFORM.Malformed) else "")


def use(reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if reader != "msgspec":
        monkeypatch.setattr(TRANSFORM, "_MSGSPEC_DECODE", None)
    if reader == "json":
        monkeypatch.setattr(TRANSFORM, "orjson", None)


def test_the_accelerators_are_installed_where_the_tests_run() -> None:
    """Else the properties below would compare json with itself (the dev requirements pin all three)."""
    assert TRANSFORM._MSGSPEC_DECODE is not None and TRANSFORM.orjson is not None and TRANSFORM.pybase64 is not None


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet='ab"\\\n\u00fc\u4e2d\ud800\U0001f600', max_size=4),
)
_documents = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "t\u00fc", "\ud800"]), inner, max_size=3),
    ),
    max_leaves=6,
)
_texts = st.one_of(
    st.builds(
        json.dumps,
        _documents,
        ensure_ascii=st.booleans(),
        separators=st.sampled_from([(",", ":"), (", ", ": ")]),
        allow_nan=st.booleans(),
    ),
    st.text(alphabet='{}[]":,0123456789.eE+- truefalsn\\u\ud800\u00fc\t\n', max_size=24),  # mostly not JSON
    st.sampled_from(
        [
            "NaN",
            "[Infinity]",
            "1e400",
            "-1e400",
            "1e-400",
            "[-0, -0.0, 0e0, 1E+2]",
            "123456789012345678901234",
            "-9223372036854775809",
            "18446744073709551616",
            '{"a":1,"b":2,"a":3}',
            '"\\ud800"',
            '"\\ud83d\\ude00"',
            '"a\x01b"',
            "\ufeff{}",
            " {} ",
            "",
            " ",
            "{} x",
        ]
    ),
)


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=_texts, as_bytes=st.booleans(), reader=st.sampled_from(READERS[:2]))
def test_loads_strict_reads_what_json_reads(text: str, as_bytes: bool, reader: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        use("json", monkeypatch)
        document = text.encode("utf-8", "surrogatepass") if as_bytes else text
        expected = outcome(lambda: TRANSFORM.loads_strict(document))
    with pytest.MonkeyPatch.context() as monkeypatch:
        use(reader, monkeypatch)
        assert outcome(lambda: TRANSFORM.loads_strict(document)) == expected


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


_payloads = st.one_of(
    _texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    _texts.map(lambda text: codecs.BOM_UTF8 + text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=24),
)
_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


@st.composite
def _record_data(draw: Any) -> Any:
    data = _b64(draw(_payloads))
    roll = draw(st.integers(0, 5))
    if roll == 0 and data:  # one character changed, dropped or doubled: often still base64, rarely canonical
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.sampled_from([*_alphabet, "", "==", " ", "\n", "-", "\u00e9"])) + data[at + 1 :]
    elif roll == 1:
        data = draw(st.text(alphabet=_alphabet + " -_\n\u00e9", max_size=12))
    return data


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=_record_data(), reader=st.sampled_from(READERS[:2]), fast_base64=st.booleans())
def test_decode_record_reads_what_the_standard_library_reads(data: str, reader: str, fast_base64: bool) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        use("json", monkeypatch)
        monkeypatch.setattr(TRANSFORM, "pybase64", None)
        expected = outcome(lambda: TRANSFORM.decode_record(data))
    with pytest.MonkeyPatch.context() as monkeypatch:
        use(reader, monkeypatch)
        if not fast_base64:
            monkeypatch.setattr(TRANSFORM, "pybase64", None)
        assert outcome(lambda: TRANSFORM.decode_record(data)) == expected


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=_record_data())
def test_b64decode_strict_is_binascii_strict_mode(data: str) -> None:
    def strict() -> bytes:
        return binascii.a2b_base64(data.encode("ascii"), strict_mode=True)

    assert outcome(lambda: TRANSFORM.b64decode_strict(data))[:2] == outcome(strict)[:2]


@given(body=st.binary(max_size=64))
def test_b64encode_is_binascii(body: bytes) -> None:
    assert TRANSFORM._b64encode(body) == binascii.b2a_base64(body, newline=False).decode("ascii")
