"""The MAC-authenticated config (docs/format.md §3)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import FormatError, IntegrityError
from deltavault.repo.canonical import canonical_json
from deltavault.repo.config import ChunkerParams, Config, parse_config, verify_config_mac
from deltavault.repo.crypto import Crypto, MasterKey
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, json_values, mutations

CRYPTO = Crypto(MasterKey(bytes(range(32))))
extras = st.dictionaries(st.text(min_size=1, max_size=6).map(lambda s: "x-" + s),
                         st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=6)
                         | st.lists(st.booleans(), max_size=2), max_size=3)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    lo = draw(st.integers(64, 1 << 20))
    avg = draw(st.integers(lo, 1 << 22))
    return Config(id=draw(st.binary(min_size=32, max_size=32)).hex(),
                  created=draw(st.text(max_size=30)),
                  chunker=ChunkerParams(lo, avg, draw(st.integers(avg, 64 << 20)),
                                        draw(st.integers(0, 3))),
                  compression_level=draw(st.integers(-7, 22)),
                  pack_size=draw(st.integers(1 << 16, 1 << 31)),
                  max_chain=draw(st.integers(0, 64)), ledger_origin=draw(st.text(max_size=9)),
                  ledger_verifier_key=draw(st.text(max_size=9)), extra=draw(extras))


@given(configs())
@ROUNDTRIP
def test_round_trip_keeps_unknown_fields(cfg: Config) -> None:
    data = cfg.encode(CRYPTO)
    back, mac = parse_config(data)
    verify_config_mac(back, mac, CRYPTO)
    assert back.to_dict() == cfg.to_dict()
    assert back.extra == cfg.extra


VALID = Config(id="ab" * 32, created="2026-11-23T09:00:00.000000Z",
               extra={"x-future": {"a": 1}}).encode(CRYPTO)


@pytest.mark.parametrize("edit", [
    lambda d: d.update(pack_size=d["pack_size"] * 2),
    lambda d: d["chunker"].update(avg_size=d["chunker"]["avg_size"] + 1),
    lambda d: d["x-future"].update(a=2),
    lambda d: d.pop("x-future"),
    lambda d: d.update(injected=True),
])
def test_any_change_breaks_the_mac(edit: object) -> None:
    doc = json.loads(VALID)
    edit(doc)  # type: ignore[operator]
    cfg, mac = parse_config(canonical_json(doc))
    with pytest.raises(IntegrityError):
        verify_config_mac(cfg, mac, CRYPTO)
    other = Crypto(MasterKey(bytes(32)))
    with pytest.raises(IntegrityError):
        verify_config_mac(*parse_config(VALID), other)


def _parse_and_verify(data: bytes) -> None:
    cfg, mac = parse_config(data)
    verify_config_mac(cfg, mac, CRYPTO)


@given(mutations(VALID))
@HOSTILE
def test_hostile_bytes(data: bytes) -> None:
    decode_or_reject(_parse_and_verify, data)


@given(st.dictionaries(st.sampled_from(sorted(json.loads(VALID))) | st.text(max_size=5),
                       json_values, max_size=6))
@HOSTILE
def test_hostile_structures(changes: dict[str, object]) -> None:
    doc = {**json.loads(VALID), **changes}
    decode_or_reject(_parse_and_verify, json.dumps(doc).encode())


@pytest.mark.parametrize("value", ["NaN", "Infinity", str(2**60), "1e400"])
def test_values_canonical_json_cannot_express_are_refused(value: str) -> None:
    # json.loads accepts these; the MAC is over RFC 8785 JSON, which cannot hold them
    text = VALID.decode().replace('"x-future":{"a":1}', f'"x-future":{value}')
    with pytest.raises((FormatError, IntegrityError)):
        _parse_and_verify(text.encode())


@pytest.mark.parametrize("change", [{"version": 2}, {"id": "AB" * 32}, {"pack_size": 10},
                                    {"chunker": {"min_size": 1, "avg_size": 1, "max_size": 1,
                                                 "normalization": 1}}, {"mac": 5}])
def test_invalid_values_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        parse_config(json.dumps({**json.loads(VALID), **change}).encode())
