"""The decoded-blob cache stays within its byte bound and keeps what is used."""

from __future__ import annotations

from deltavault.repo.blobcache import DEFAULT_BYTES, BlobCache


def test_evicts_least_recently_used_to_stay_within_the_bound() -> None:
    cache = BlobCache(max_bytes=100)
    for key in (b"a", b"b", b"c", b"d"):
        cache.put(key, bytes(25))
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"e", bytes(25))
    assert cache.get(b"b") is None
    assert [cache.get(k) is not None for k in (b"a", b"c", b"d", b"e")] == [True] * 4


def test_a_blob_over_a_quarter_of_the_bound_is_not_kept() -> None:
    cache = BlobCache(max_bytes=100)
    cache.put(b"small", bytes(25))
    cache.put(b"big", bytes(26))
    assert cache.get(b"big") is None
    assert cache.get(b"small") == bytes(25)


def test_default_bound_keeps_chunk_sized_bases_and_stays_small() -> None:
    """A 2 MiB delta base (a typical array chunk) is kept; the whole cache is 8 MiB."""
    cache = BlobCache()
    for i in range(8):
        cache.put(bytes([i]), bytes(2 << 20))
    kept = [i for i in range(8) if cache.get(bytes([i])) is not None]
    assert kept == [4, 5, 6, 7]
    assert DEFAULT_BYTES == 8 << 20


def test_resize_evicts_down_to_the_new_bound_and_returns_the_old() -> None:
    cache = BlobCache(max_bytes=100)
    for key in (b"a", b"b", b"c", b"d"):
        cache.put(key, bytes(25))
    assert cache.resize(50) == 100
    assert [cache.get(k) is not None for k in (b"a", b"b", b"c", b"d")] == [
        False, False, True, True]
    cache.put(b"e", bytes(13))  # over a quarter of the new bound: not kept
    assert cache.get(b"e") is None
    assert cache.resize(100) == 50


def test_bounded_restores_the_bound_after_the_block_even_on_error() -> None:
    cache = BlobCache(max_bytes=100)
    with cache.bounded(40):
        cache.put(b"a", bytes(11))  # over a quarter of 40
        assert cache.get(b"a") is None
    try:
        with cache.bounded(40):
            raise KeyError
    except KeyError:
        pass
    assert cache.resize(100) == 100
