"""Storage backends behind one narrow :class:`Store` contract."""

from deltavault.store.base import ByteRange, ObjectInfo, Store, check_key
from deltavault.store.local import LocalStore

__all__ = ["ByteRange", "LocalStore", "ObjectInfo", "Store", "check_key"]
