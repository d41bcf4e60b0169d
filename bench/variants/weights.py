"""Model weights: float32 tensors that zstd shrinks by only a few per cent.

A transformer-shaped model: per block ``attn_qkv (d, 3d)``, ``attn_out (d, d)``,
``mlp_up (d, 4d)``, ``mlp_down (4d, d)`` as ``.npy`` files and the layer norms
as one small ``(4, d)`` array; token and position embeddings in one
safetensors file (8-byte header length, JSON header, raw little-endian data),
as training frameworks write them. Values are normal with the fan-in's
standard deviation, so every mantissa bit is noise and zstd gains only what
the exponent byte gives (~7 %).

One day of change: one or two blocks are fine-tuned — every value of every
tensor in them moves by one optimiser step of ``lr * sign(noise)`` (a
relative change around 1e-3 .. 1e-4); on even days ~1 % of the token
embedding rows also move (the tokens seen that day); ``train_state.json``
records the step.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from variants.common import Change, MiB, load_npy, rng, save_npy, write_bytes, write_json

BLOCKS = 10
CONTEXT = 2048
LR = 2e-5
TENSORS = ("attn_qkv", "attn_out", "mlp_up", "mlp_down")
EMBED_SHARE = 0.01


def dims(target_bytes: int) -> tuple[int, int]:
    """Model width and vocabulary that fill ``target_bytes`` of float32 with 10 blocks."""
    d = max(64, 64 * round(640 * (target_bytes / (250 * MiB)) ** 0.5 / 64))
    d = min(d, 640)
    block = 12 * d * d + 4 * d
    vocab = max(256, (target_bytes // 4 - BLOCKS * block) // d - CONTEXT)
    return d, int(vocab)


def _shape(name: str, d: int) -> tuple[int, int]:
    return {"attn_qkv": (d, 3 * d), "attn_out": (d, d), "mlp_up": (d, 4 * d),
            "mlp_down": (4 * d, d)}[name]


def generate(root: Path, seed: int, *, target_bytes: int, tag: str = "weights") -> None:
    """Write the model under ``root``."""
    d, vocab = dims(target_bytes)
    for b in range(BLOCKS):
        g = rng(seed, tag, "block", b)
        for name in TENSORS:
            shape = _shape(name, d)
            std = g.uniform(0.8, 1.2) / np.sqrt(shape[0])
            save_npy(root / "blocks" / f"{b:02d}" / f"{name}.npy",
                     (g.standard_normal(shape, dtype=np.float32) * np.float32(std)))
        norms = np.ones((4, d), dtype=np.float32)
        norms[1::2] = 0
        norms += g.standard_normal((4, d), dtype=np.float32) * np.float32(0.02)
        save_npy(root / "blocks" / f"{b:02d}" / "norms.npy", norms)
    g = rng(seed, tag, "embeddings")
    tensors = {"tok_embed": g.standard_normal((vocab, d), dtype=np.float32) * np.float32(0.02),
               "pos_embed": g.standard_normal((CONTEXT, d), dtype=np.float32) * np.float32(0.01)}
    write_safetensors(root / "embeddings.safetensors", tensors)
    write_json(root / "config.json", {"arch": "decoder-only", "d_model": d, "n_blocks": BLOCKS,
                                      "vocab": vocab, "context": CONTEXT, "dtype": "float32"})
    write_json(root / "train_state.json", {"step": 100_000, "lr": LR, "loss": 2.3125})


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: u64 header length, JSON header (space-padded to 8), data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, t in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    write_bytes(path, struct.pack("<Q", len(text)) + text
                + b"".join(np.ascontiguousarray(t, dtype="<f4").tobytes()
                           for t in tensors.values()))


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Inverse of :func:`write_safetensors` (float32 tensors only)."""
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data, "<f4", (b - a) // 4, 8 + n + a).reshape(meta["shape"])
    return out


def mutate(root: Path, prefix: str, seed: int, day: int, *, tag: str = "weights") -> Change:
    """Fine-tune one or two blocks (and on even days a few embedding rows)."""
    change = Change(day)
    g = rng(seed, tag, "day", day)
    blocks = sorted(p.name for p in (root / "blocks").iterdir())
    for b in g.choice(np.array(blocks), size=int(g.integers(1, 3)), replace=False).tolist():
        for name in TENSORS:
            path = root / "blocks" / b / f"{name}.npy"
            w = load_npy(path)
            step = np.sign(g.standard_normal(w.shape, dtype=np.float32)) * np.float32(LR)
            save_npy(path, (w - step).astype(np.float32))
            change.touch(f"{prefix}blocks/{b}/{name}.npy")
        change.count("blocks_tuned")
    if day % 2 == 0:
        path = root / "embeddings.safetensors"
        tensors = {k: v.copy() for k, v in read_safetensors(path).items()}
        tok = tensors["tok_embed"]
        rows = np.flatnonzero(g.random(len(tok)) < EMBED_SHARE)
        tok[rows] -= (np.sign(g.standard_normal((len(rows), tok.shape[1]), dtype=np.float32))
                      * np.float32(LR))
        write_safetensors(path, tensors)
        change.touch(f"{prefix}embeddings.safetensors")
        change.count("embedding_rows_tuned", len(rows))
    state = json.loads((root / "train_state.json").read_text())
    state.update(step=state["step"] + 500, loss=round(state["loss"] * 0.999, 6))
    write_json(root / "train_state.json", state)
    change.touch(f"{prefix}train_state.json")
    return change
