"""``deltavault mount``: every snapshot as a read-only file system (FUSE).

Modules: :mod:`~deltavault.mount.layout` (which path names which snapshot),
:mod:`~deltavault.mount.source` (the only caller of the engine),
:mod:`~deltavault.mount.cache` and :mod:`~deltavault.mount.files` (reading
verified blobs through a bounded cache), :mod:`~deltavault.mount.fs` (the
FUSE operations) and :mod:`~deltavault.mount.run` (the binding, mount and
unmount).
"""
