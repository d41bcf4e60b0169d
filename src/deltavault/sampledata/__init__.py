"""Sample trading state for the demo, tests and benchmarks.

Re-exports the entry points of :mod:`deltavault.sampledata.state`; the
generators of each part live in ``arrays``, ``config`` and ``trading``.
"""

from deltavault.sampledata.state import (
    PARTS,
    ChangeSummary,
    StateManifest,
    generate,
    manifest,
    mutate,
    part_of,
)

__all__ = ["PARTS", "ChangeSummary", "StateManifest", "generate", "manifest", "mutate", "part_of"]
