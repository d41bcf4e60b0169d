"""Compression and delta codecs, and the policy that picks one per chunk.

Public API used by the backup and restore pipelines:

* :func:`choose` — encode a chunk with the best codec under a policy.
* :func:`decode` — decode a payload by codec id (with its base plaintext).
* :class:`CodecId`, :class:`Encoded`, :data:`Policy`.

(:mod:`deltavault.codec.sketch` finds a similar base chunk for streams.) The
package imports no numpy: the numeric codecs load it when first used.
"""

from deltavault.codec.policy import Encoded, Policy, choose
from deltavault.codec.registry import CODECS, CodecId, decode, encode

__all__ = [
    "CODECS",
    "CodecId",
    "Encoded",
    "Policy",
    "choose",
    "decode",
    "encode",
]
