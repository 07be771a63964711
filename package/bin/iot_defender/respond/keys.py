"""The record keys: what authenticates quarantine records (HMAC-SHA256), with rotation.

Life cycle (see docs/security.md):

- keys are created only by setup (the add-on's *Response* configuration tab, or the response stack's secret):
  release and quarantine never create one;
- a key shorter than :data:`MIN_KEY_CHARACTERS` is refused at setup and, should one reach a run anyway, ignored
  with a warning (it never makes an action fail);
- rotation: the newest key signs, every configured key verifies (a record names its key by :func:`key_id`), so
  records written before a rotation are still released exactly; drop an old key only once no record uses it;
- no usable key: quarantine records are written unauthenticated (the run ends as ``warning``) and release keeps
  an authenticated record it cannot verify, with a warning, instead of deleting it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import List, Optional, Sequence, Tuple

MIN_KEY_CHARACTERS = 32
MAC_LENGTH = 22  # base64url characters: 132 bits of HMAC-SHA256
KEY_ID_LENGTH = 8


def key_id(key: bytes) -> str:
    """A short public name for a key (not the key: a hash of it under its own label)."""
    return hashlib.sha256(b"ta-aws-iot-defender/record-key-id\x1f" + key).hexdigest()[:KEY_ID_LENGTH]


class Keyring:
    """The record keys, newest first. ``problems`` says which configured keys were unusable (never the keys)."""

    def __init__(self, keys: Sequence[bytes] = (), problems: Sequence[str] = ()):
        self.problems: List[str] = list(problems)
        usable: List[bytes] = []
        for position, key in enumerate(keys, 1):
            if len(key) < MIN_KEY_CHARACTERS:
                self.problems.append(f"record key #{position} is shorter than {MIN_KEY_CHARACTERS} characters: ignored")
            elif key not in usable:
                usable.append(key)
        self._keys = usable

    @classmethod
    def from_text(cls, text: Optional[str], legacy: Sequence[bytes] = ()) -> Keyring:
        """Keys as setup stores them: separated by commas or whitespace, newest first; ``legacy`` keys (the
        add-on's former automatically created key) verify only, after all configured ones."""
        keys = [part.encode("utf-8") for part in (text or "").replace(",", " ").split()]
        return cls([*keys, *legacy])

    def __bool__(self) -> bool:
        return bool(self._keys)

    def ids(self) -> List[str]:
        return [key_id(key) for key in self._keys]

    @property
    def newest_id(self) -> Optional[str]:
        return key_id(self._keys[0]) if self._keys else None

    def sign(self, message: bytes) -> Tuple[str, str]:
        """(key id, MAC) with the newest key."""
        key = self._keys[0]
        return key_id(key), _mac(key, message)

    def verify(self, message: bytes, kid: Optional[str], mac: str) -> bool:
        """True when a configured key (the one named ``kid``, or any when the record names none) made ``mac``."""
        for key in self._keys:
            if kid and key_id(key) != kid:
                continue
            if hmac.compare_digest(_mac(key, message), mac or ""):
                return True
        return False


def _mac(key: bytes, message: bytes) -> str:
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:MAC_LENGTH]
