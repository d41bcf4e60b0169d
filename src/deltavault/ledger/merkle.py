"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

Everything here is pure. Proof *generation* never needs the leaves: it asks a
:data:`NodeReader` for the hashes of complete (perfect, aligned) subtrees, and
the tile layer answers from stored tiles, so a proof in a log of 10 million
entries costs O(log n) hash reads. Every subtree of an RFC 6962 tree is the
range ``[k·2^m, min((k+1)·2^m, n))``; an incomplete one at the right edge is
the fold of the complete subtrees its range splits into, which is what
:func:`range_hash` computes.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
(consistency) step by step, so it can be checked against the RFC text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deltavault.errors import ProofError

HASH_SIZE = 32
#: MTH({}) — the hash of an empty tree (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``reader(level, index)`` returns the hash of the complete subtree of
#: ``2**level`` leaves starting at leaf ``index * 2**level``.
NodeReader = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 ‖ entry): the domain byte stops a leaf posing as a node."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (RFC 9162 §2.1.1), iteratively.

    Args:
        leaf_hashes: the leaf hashes in order.

    Returns:
        The root hash; :data:`EMPTY_ROOT` for no leaves.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    # Fold level by level; an odd last node is carried up unchanged, which
    # is exactly the RFC's split at the largest power of two.
    level = list(leaf_hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root_of_entries(entries: Sequence[bytes]) -> bytes:
    """MTH over raw entries (hashes each as a leaf first)."""
    return tree_hash([leaf_hash(e) for e in entries])


def range_hash(reader: NodeReader, start: int, end: int) -> bytes:
    """Hash of the RFC 6962 subtree covering leaves ``[start, end)``.

    ``start`` must be aligned to a power of two at least ``end - start``
    (true of every subtree of an RFC 6962 tree). The range splits into
    complete subtrees of decreasing size; folding them right to left is the
    RFC's recursive split.
    """
    if end <= start:
        raise ProofError(f"empty subtree range [{start}, {end})")
    parts: list[bytes] = []
    pos = start
    remaining = end - start
    while remaining:
        level = remaining.bit_length() - 1
        parts.append(reader(level, pos >> level))
        pos += 1 << level
        remaining -= 1 << level
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = node_hash(part, acc)
    return acc


def root_from_reader(reader: NodeReader, size: int) -> bytes:
    """Root hash of the tree of ``size`` leaves, from stored nodes."""
    return EMPTY_ROOT if size == 0 else range_hash(reader, 0, size)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PATH(index, D[size]), leaf side first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(old, D[new]) (RFC 9162 §2.1.4.1)."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of ``size`` leaves."""
    return [range_hash(reader, a, b) for a, b in inclusion_ranges(index, size)]


def consistency_proof(reader: NodeReader, old: int, new: int) -> list[bytes]:
    """Consistency proof between tree sizes ``old`` and ``new``."""
    return [range_hash(reader, a, b) for a, b in consistency_ranges(old, new)]


def list_reader(leaf_hashes: Sequence[bytes]) -> NodeReader:
    """A NodeReader over an in-memory list of leaf hashes (tests, small trees)."""

    def read(level: int, index: int) -> bytes:
        start = index << level
        end = start + (1 << level)
        if end > len(leaf_hashes):
            raise ProofError(f"node {level}/{index} is not complete in {len(leaf_hashes)} leaves")
        return tree_hash(leaf_hashes[start:end])

    return read


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is {len(h)} bytes, expected {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162 §2.1.3.2).

    Raises:
        ProofError: the index is out of range or the path has the wrong length.
    """
    _check_hash(leaf, "leaf hash")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` with ``root``.

    Raises:
        ProofError: with what failed.
    """
    _check_hash(root, "root hash")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new, new_root) extends (old, old_root) (RFC 9162 §2.1.4.2).

    Raises:
        ProofError: with what failed.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for p in proof:
        _check_hash(p, "proof hash")
    if not 0 <= old <= new:
        raise ProofError(f"tree size went back from {old} to {new}")
    if old == new:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old}")
        return
    if old == 0:
        # Every tree extends the empty tree; only the empty root is valid for it.
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise ProofError("root of the empty tree is not SHA-256 of nothing")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not reproduce the old root of size {old}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not reproduce the new root of size {new}")


@dataclass(frozen=True)
class InclusionProof:
    """An audit path: leaf ``index`` in the tree of ``size`` leaves."""

    index: int
    size: int
    hashes: tuple[bytes, ...]

    def verify(self, leaf: bytes, root: bytes) -> None:
        """Raise ProofError unless ``leaf`` (a leaf hash) is in the tree with ``root``."""
        verify_inclusion(self.index, self.size, leaf, self.hashes, root)


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of size ``new`` extends the tree of size ``old``."""

    old: int
    new: int
    hashes: tuple[bytes, ...]

    def verify(self, old_root: bytes, new_root: bytes) -> None:
        """Raise ProofError unless the two roots are consistent."""
        verify_consistency(self.old, self.new, old_root, new_root, self.hashes)
