"""RFC 6962 hashing and proofs: known answers, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.errors import ProofError
from deltavault.ledger.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    list_reader,
    root_from_reader,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# Test vectors of the Certificate Transparency reference implementation
# (google/certificate-transparency cpp/merkletree/merkle_tree_test.cc), as
# republished in transparency-dev/merkle testdata/internal/gen.go. Indexes
# below are 0-based (gen.go's are 1-based).
LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f"]]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]]  # fmt: skip
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
HASHES = [leaf_hash(e) for e in LEAVES]


def test_empty_root() -> None:
    assert tree_hash([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("n", range(1, 9))
def test_roots(n: int) -> None:
    assert tree_hash(HASHES[:n]) == ROOTS[n - 1]
    assert root_from_reader(list_reader(HASHES[:n]), n) == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(list_reader(HASHES[:size]), index, size)
    assert [p.hex() for p in proof] == path
    verify_inclusion(index, size, HASHES[index], proof, ROOTS[size - 1])
    for wrong in ((index + 1, size), (index, size * 2)):  # probes of gen.go
        if wrong[0] < wrong[1] and proof:
            with pytest.raises(ProofError):
                verify_inclusion(*wrong, HASHES[index], proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_vectors(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(list_reader(HASHES[:new]), old, new)
    assert [p.hex() for p in proof] == path
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)
    if proof:
        with pytest.raises(ProofError):
            verify_consistency(old, new, ROOTS[new - 1], ROOTS[old - 1], proof)
        with pytest.raises(ProofError):
            verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], [*proof, ROOTS[0]])


def test_edge_cases() -> None:
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, ROOTS[0], ROOTS[4], [])
    with pytest.raises(ProofError):
        verify_consistency(3, 2, ROOTS[2], ROOTS[1], [])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, ROOTS[2], ROOTS[1], [])
    with pytest.raises(ProofError):
        verify_inclusion(1, 1, HASHES[0], [], ROOTS[0])
    with pytest.raises(ProofError):
        verify_inclusion(0, 1, b"short", [], ROOTS[0])


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    b = bytearray(out[i])
    b[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(b)
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_random_inclusion(size: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = tree_hash(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(list_reader(hashes), index, size)
    verify_inclusion(index, size, hashes[index], proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        with pytest.raises(ProofError):
            verify_inclusion(index, size, hashes[index], _flip(proof, i, bit), root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf_hash(b"other"), proof, root)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_random_consistency(new: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(new)]
    old = data.draw(st.integers(1, new))
    proof = consistency_proof(list_reader(hashes), old, new)
    old_root, new_root = tree_hash(hashes[:old]), tree_hash(hashes)
    verify_consistency(old, new, old_root, new_root, proof)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        with pytest.raises(ProofError):
            verify_consistency(old, new, old_root, new_root, _flip(proof, i, bit))
    if old < new:
        with pytest.raises(ProofError):
            verify_consistency(old, new, leaf_hash(b"x"), new_root, proof)
