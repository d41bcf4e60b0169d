"""Storage backends behind one narrow :class:`Store` contract.

Open any of them from a URL with :func:`deltavault.store.url.open_store`
(local path, ``s3://``, ``sftp://``, ``rest:https://``).
"""

from deltavault.store.base import ByteRange, ObjectInfo, Store, check_key
from deltavault.store.local import LocalStore

__all__ = ["ByteRange", "LocalStore", "ObjectInfo", "Store", "check_key"]
