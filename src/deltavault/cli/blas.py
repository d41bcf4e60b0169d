"""Keep numpy's BLAS library to the calling thread.

deltavault uses numpy for element-wise work on columns (delta prediction, byte
planes, index arrays), never for linear algebra. Yet numpy's wheels load
OpenBLAS, which at import starts a pool of one thread per extra core whose
threads poll for work: on the bench's 2-core machine ``import numpy`` took
0.14 s of wall time (0.13 s CPU) with the pool and 0.09 s without, and a
rollback's profile showed 7 % of its CPU samples in that pool's idle loop,
CPU a backup's workers need. The console script (the process owner) limits
the pool before numpy is first imported; a user who sets the variable keeps
their value, and a program using :mod:`deltavault.api` decides for itself.
"""

from __future__ import annotations

import os

#: the variable OpenBLAS reads for the size of its pool (its main thread included)
POOL_VARIABLE = "OPENBLAS_NUM_THREADS"


def single_threaded_blas() -> None:
    """Ask OpenBLAS for no helper threads unless the user chose a pool size."""
    os.environ.setdefault(POOL_VARIABLE, "1")
