"""Compact sets of the inventory run: 8 bytes a key, never the fleet's objects.

- :func:`fingerprint`: a 64-bit digest of a key (collisions among a million names: ~3e-8);
- :class:`SeenKeys`: the keys a run has seen (stale-row deletion, a document listed twice);
- :class:`CertificateIndex`: certificate id -> status for every certificate of a region.

Re-exported by :mod:`iot_defender.inventory`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from array import array
from typing import Optional

STATUS_CODES = ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION")


def fingerprint(text: str) -> int:
    """64-bit fingerprint (collisions among a million names: ~3e-8)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def contains(sorted_keys: array, value: int) -> bool:
    i = bisect.bisect_left(sorted_keys, value)
    return i < len(sorted_keys) and sorted_keys[i] == value


class SeenKeys:
    """The fingerprints of the keys a run has seen, 8 bytes each once merged: a sorted array plus a small set of the
    latest ones, merged when the set reaches a quarter of the array (so a run of n things sorts O(log n) times)."""

    MERGE_MIN = 4096

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set = set()

    def add(self, value: int) -> bool:
        """Remember ``value``; False when it was already there."""
        if value in self._recent or contains(self._sorted, value):
            return False
        self._recent.add(value)
        if len(self._recent) >= max(self.MERGE_MIN, len(self._sorted) // 4):
            self._merge()
        return True

    append = add  # the array-like spelling tests and tools use

    def discard(self, value: int) -> None:
        """Forget ``value`` (a thing deleted mid-run: its row is stale after all). Rare, so O(n) is fine."""
        self._recent.discard(value)
        i = bisect.bisect_left(self._sorted, value)
        if i < len(self._sorted) and self._sorted[i] == value:
            self._sorted.pop(i)

    def _merge(self) -> None:
        if self._recent:
            self._sorted = array("Q", sorted(itertools.chain(self._sorted, self._recent)))
            self._recent = set()

    def sorted(self) -> array:
        self._merge()
        return self._sorted

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


class CertificateIndex:
    """Certificate id -> status for every certificate of a region, 8 bytes each (61-bit fingerprint + status)."""

    def __init__(self) -> None:
        self._packed = array("Q")
        self.count = 0

    def add(self, certificate_id: str, status: str) -> None:
        code = STATUS_CODES.index(status) if status in STATUS_CODES else 7
        self._packed.append((fingerprint(certificate_id) >> 3) << 3 | code)
        self.count += 1

    def freeze(self) -> None:
        self._packed = array("Q", sorted(self._packed))

    def status(self, certificate_id: str) -> Optional[str]:
        base = (fingerprint(certificate_id) >> 3) << 3
        i = bisect.bisect_left(self._packed, base)
        if i < len(self._packed) and self._packed[i] >> 3 == base >> 3:
            code = self._packed[i] & 7
            return STATUS_CODES[code] if code < len(STATUS_CODES) else "UNKNOWN"
        return None
