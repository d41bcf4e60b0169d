"""Repository totals: snapshots, packs, blobs, stored and plain bytes."""

from __future__ import annotations

from deltavault.repo.repository import Repository


def repository_stats(repo: Repository) -> dict[str, int]:
    """Counts and byte totals over the index and the stored packs."""
    idx = repo.load_index()
    sizes = repo.objects.pack_sizes()
    snaps = repo.snapshots()
    blobs = delta_blobs = plain = 0
    for loc in idx.all_locations():
        blobs += 1
        delta_blobs += loc.base is not None
        plain += loc.raw_length
    return {
        "snapshots": len(snaps),
        "packs": len(sizes),
        "stored_bytes": sum(sizes.values()),
        "blobs": blobs,
        "delta_blobs": delta_blobs,
        "plain_bytes": plain,
        "latest_size": int(snaps[-1].summary.get("bytes_total", 0)) if snaps else 0,
    }
