"""Text that leaves the add-on for a human to read: OpsItems, incidents, titles, markdown.

Device-influenced text (a thing name, client id or attribute a device chose, a row an alert author wrote) must not
carry a control, bidi-override or zero-width character (a title that reads differently than it is), nor link or
embed syntax (a ``[label](url)`` the analyst clicks). :func:`plain_text` removes both; :func:`markdown_text` also
escapes what markdown would read as formatting. The event model re-exports these (``events.plain_text``...).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Characters that never reach a human-read text: controls (Cc), format characters (Cf: bidi overrides and
# isolates, zero-width joiners), surrogates, private use and unassigned code points, line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Characters that make a link or an embed in markdown/HTML renderers (OpsCenter, Incident Manager, Splunk markdown).
_LINK_CHARACTERS = str.maketrans({c: "_" for c in "[]()<>`"})
_SCHEME = re.compile(r":/+")
_WWW = re.compile(r"(?i)www\.")
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def plain_text(value: Any, limit: int = 1024) -> str:
    """Text safe to put in an OpsItem, an incident or any rendered text: no control, bidi or zero-width character
    (whitespace controls become a space), no link syntax (``[]()<>`` and backquote become ``_``, a ``scheme://``
    loses its slashes, ``www.`` its dot), blanks collapsed, cut to ``limit`` characters (``...`` marks a cut)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    kept = []
    for char in unicodedata.normalize("NFC", text):
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            if char in "\t\n\r\x0b\x0c\u2028\u2029":
                kept.append(" ")
            continue
        kept.append(char)
    text = " ".join("".join(kept).translate(_LINK_CHARACTERS).split())
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    # Last, so a cut cannot make a link again; both only shorten or keep the length.
    return _WWW.sub("www_", _SCHEME.sub(":", text))


def title_text(value: Any, limit: int = 128) -> str:
    """One line for a title (an OpsItem or incident title, a panel title): :func:`plain_text`, shorter."""
    return plain_text(value, limit)


def markdown_text(value: Any, limit: int = 1024) -> str:
    """Text to place inside markdown: :func:`plain_text`, then every markdown/HTML special character escaped with
    a backslash, so it renders as the literal text (no heading, emphasis, table, link or tag)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", plain_text(value, limit))
