"""Compression and delta codecs, and the policy that picks one per chunk.

Public API used by the backup and restore pipelines:

* :func:`choose` — encode a chunk with the best codec under a policy.
* :func:`decode` — decode a payload by codec id (with its base plaintext).
* :class:`CodecId`, :class:`Encoded`, :data:`Policy`.
* :class:`SketchIndex` / :func:`sketch` — find a similar base chunk for streams.
"""

from deltavault.codec.policy import Encoded, Policy, choose
from deltavault.codec.registry import CODECS, CodecId, decode, encode
from deltavault.codec.sketch import Sketch, SketchIndex, sketch

__all__ = [
    "CODECS",
    "CodecId",
    "Encoded",
    "Policy",
    "Sketch",
    "SketchIndex",
    "choose",
    "decode",
    "encode",
    "sketch",
]
