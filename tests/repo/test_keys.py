"""Password key files (docs/format.md §2.3)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import FormatError
from deltavault.repo.canonical import canonical_json
from deltavault.repo.crypto import MasterKey
from deltavault.repo.keys import KdfParams, key_id_of, make_key_file, parse_key_file, unwrap
from tests.support.hostile import HOSTILE, decode_or_reject, json_values, mutations

MASTER = MasterKey(bytes(range(32)))
REPO_ID = "ab" * 32
CHEAP = KdfParams(salt=b"s" * 16, time_cost=1, memory_kib=8192, parallelism=1)
VALID = make_key_file(MASTER, b"pw", REPO_ID, CHEAP)


def test_round_trip_and_unwrap() -> None:
    kid = key_id_of(VALID)
    kf = parse_key_file(VALID, kid)
    assert kf.id == kid and kf.kdf == CHEAP
    assert set(json.loads(VALID)) == {"created", "data", "host", "kdf", "user", "version"}
    assert canonical_json(json.loads(VALID)) == VALID
    assert unwrap(kf, b"pw", REPO_ID) == MASTER
    assert unwrap(kf, b"wrong", REPO_ID) is None
    # the wrapped key is bound to the repository id
    assert unwrap(kf, b"pw", "cd" * 32) is None


def test_unknown_fields_are_kept() -> None:
    doc = {**json.loads(VALID), "x-future": [1, "a"]}
    assert parse_key_file(canonical_json(doc), "k").raw["x-future"] == [1, "a"]


@pytest.mark.parametrize("kdf", [{"memory_kib": 4 * 1024 * 1024 + 1}, {"memory_kib": 1024},
                                 {"time_cost": 0}, {"time_cost": 65}, {"parallelism": 0},
                                 {"parallelism": 65}, {"salt": "c2hvcnQ="},
                                 {"algorithm": "scrypt"}, {"salt": "!!"},
                                 {"memory_kib": True}])
def test_machine_exhausting_or_unsafe_kdf_is_refused(kdf: dict[str, object]) -> None:
    doc = json.loads(VALID)
    doc["kdf"].update(kdf)
    with pytest.raises(FormatError):
        parse_key_file(json.dumps(doc).encode(), "k")


@given(mutations(VALID))
@HOSTILE
def test_hostile_bytes(data: bytes) -> None:
    kf = decode_or_reject(lambda d: parse_key_file(d, "k"), data)
    if kf is not None:
        kf.kdf.check()


@given(st.dictionaries(st.sampled_from(["created", "data", "host", "kdf", "user", "version"])
                       | st.text(max_size=4), json_values, max_size=4),
       st.dictionaries(st.sampled_from(["algorithm", "memory_kib", "parallelism", "salt",
                                        "time_cost"]), json_values, max_size=3))
@HOSTILE
def test_hostile_structures(changes: dict[str, object], kdf: dict[str, object]) -> None:
    doc = {**json.loads(VALID), **changes}
    decode_or_reject(lambda d: parse_key_file(d, "k"), json.dumps(doc).encode())
    doc = json.loads(VALID)
    doc["kdf"].update(kdf)
    decode_or_reject(lambda d: parse_key_file(d, "k"), json.dumps(doc).encode())


def test_wrapped_secret_of_wrong_size_is_refused() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from deltavault.repo.crypto import seal_with

    doc = json.loads(VALID)
    wrap = AESGCM(CHEAP.derive(b"pw"))
    import base64

    doc["data"] = base64.b64encode(seal_with(wrap, b"dv1:key:" + REPO_ID.encode(), b"x" * 16)
                                   ).decode()
    kf = parse_key_file(canonical_json(doc), "k")
    with pytest.raises(FormatError):
        unwrap(kf, b"pw", REPO_ID)
