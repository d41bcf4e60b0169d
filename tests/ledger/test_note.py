"""Signed notes, keys, checkpoints and cosignatures."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.note import (
    Checkpoint,
    Note,
    NoteSigner,
    add_cosignature,
    cosignature_time,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_skey,
    parse_vkey,
    sign_checkpoint,
    verify_note,
)
from tests.support.ledger import seeded_key

# golang.org/x/mod/sumdb/note note_test.go / example_test.go (the signed-note
# reference implementation).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_reference_note() -> None:
    signer = parse_skey(GO_SKEY)
    assert signer.verifier.vkey() == GO_VKEY
    assert signer.skey() == GO_SKEY
    note = Note(GO_TEXT, (signer.sign(GO_TEXT),))
    assert note.to_bytes().decode() == GO_NOTE
    parsed = parse_note(GO_NOTE.encode())
    assert verify_note(parsed, [parse_vkey(GO_VKEY)])[0].name == "PeterNeumann"


def test_tampered_note_refused() -> None:
    bad = GO_NOTE.replace("problem,", "problem;").encode()
    with pytest.raises(LedgerError, match="does not verify"):
        verify_note(parse_note(bad), [parse_vkey(GO_VKEY)])


def test_unknown_key_ignored_but_one_needed() -> None:
    other = NoteSigner("other.example", seeded_key("other"))
    with pytest.raises(LedgerError, match="not signed by any trusted key"):
        verify_note(parse_note(GO_NOTE.encode()), [other.verifier])


def test_bad_vkeys() -> None:
    for bad in ["", "a+b", GO_VKEY.replace("c74f20a3", "c74f20a4"), "Peter Neumann+00+AA==",
                GO_VKEY[:-2]]:  # fmt: skip
        with pytest.raises(FormatError):
            parse_vkey(bad)


def test_checkpoint_roundtrip_and_cosignature(witness: NoteSigner) -> None:
    signer = NoteSigner("example.com/log", seeded_key("log"))
    cp = Checkpoint("example.com/log", 42, bytes(range(32)), ("ext line",))
    signed = sign_checkpoint(cp, signer)
    assert parse_checkpoint(signed.note.text) == cp
    co = add_cosignature(signed, witness, 1_700_000_000)
    opened = open_checkpoint(co.to_bytes(), signer.verifier, "example.com/log")
    sigs = verify_note(opened.note, [witness.verifier])
    assert cosignature_time(sigs[0]) == 1_700_000_000
    with pytest.raises(LedgerError, match="expected"):
        open_checkpoint(co.to_bytes(), signer.verifier, "other/log")
    again = add_cosignature(co, witness, 1_700_000_001)
    assert len(again.note.signatures) == 2


@pytest.mark.parametrize(
    "text",
    ["o\n", "o\n01\nAAAA\n", "o\n1\nAAAA\n", "\n1\n" + "A" * 43 + "=\n",
     "o\n-1\n" + "A" * 43 + "=\n",
     "o\n1\n" + "A" * 43 + "=\n\n"],
)  # fmt: skip
def test_bad_checkpoints(text: str) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_note_parser_fuzz(data: bytes) -> None:
    try:
        note = parse_note(data)
        parse_checkpoint(note.text)
    except (FormatError, LedgerError):
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(GO_NOTE.encode())), st.integers(0, 255))
def test_note_mutations(pos: int, value: int) -> None:
    data = bytearray(GO_NOTE.encode())
    if pos < len(data):
        data[pos] = value
    with contextlib.suppress(FormatError, LedgerError):
        verify_note(parse_note(bytes(data[: pos + 1] + data[pos + 1 :])), [parse_vkey(GO_VKEY)])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_key_parsers_fuzz(text: str) -> None:
    for parse in (parse_vkey, parse_skey):
        with contextlib.suppress(FormatError):
            parse(text)
