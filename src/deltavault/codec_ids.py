"""Codec ids as stored in pack headers and indexes (docs/format.md §4).

Kept apart from :mod:`deltavault.codec` so the format layers can validate ids
without importing the codecs themselves.
"""

from __future__ import annotations

RAW = 0
ZSTD = 1
ZSTD_PATCH = 2
FLOAT_XOR = 3
FLOAT_SUB = 4
DECIMAL = 5

KNOWN_CODECS = frozenset({RAW, ZSTD, ZSTD_PATCH, FLOAT_XOR, FLOAT_SUB, DECIMAL})
CODECS_WITH_BASE = frozenset({ZSTD_PATCH, FLOAT_XOR, FLOAT_SUB, DECIMAL})
NAMES = {RAW: "raw", ZSTD: "zstd", ZSTD_PATCH: "zstd-patch", FLOAT_XOR: "float-xor",
         FLOAT_SUB: "float-sub", DECIMAL: "decimal"}
