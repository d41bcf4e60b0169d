"""Array parts of the sample trading state: L2 order books and model layers.

Both are written as ``.npy`` files because that is how a research or trading
stack dumps them, and because their day-to-day change (every price a few
ticks off, every weight 1e-4 off) is exactly what defeats chunk dedup and
what float-aware delta codecs are for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deltavault.sampledata.trading import Instrument

LEVELS = 10
FIELDS = 4  # bid px, bid size, ask px, ask size
SNAPSHOT_BYTES = LEVELS * FIELDS * 8


def make_book(rng: np.random.Generator, ins: Instrument, n_snapshots: int) -> np.ndarray:
    """L2 snapshots (n, LEVELS, 4) of one instrument, on tick and on lot.

    The touch follows a random walk in ticks; deeper levels are one or two
    ticks apart, so every snapshot is a valid, uncrossed book.
    """
    steps = rng.integers(-2, 3, n_snapshots)
    bid0 = np.maximum(ins.ref_ticks + np.cumsum(steps), LEVELS * 3)
    spread = 1 + (rng.random(n_snapshots) < 0.2) + (rng.random(n_snapshots) < 0.05)
    gaps = 1 + (rng.random((n_snapshots, LEVELS)) < 0.3).astype(np.int64)
    gaps[:, 0] = 0
    depth = np.cumsum(gaps, axis=1)
    bid = bid0[:, None] - depth
    ask = (bid0 + spread)[:, None] + depth
    book = np.empty((n_snapshots, LEVELS, FIELDS), dtype=np.float64)
    book[:, :, 0] = ins.prices(bid)
    book[:, :, 1] = ins.sizes(rng.geometric(0.04, (n_snapshots, LEVELS)))
    book[:, :, 2] = ins.prices(ask)
    book[:, :, 3] = ins.sizes(rng.geometric(0.04, (n_snapshots, LEVELS)))
    return book


def move_book(rng: np.random.Generator, ins: Instrument, book: np.ndarray) -> np.ndarray:
    """A new version where every price moved by 1-3 ticks and some sizes changed.

    One shift per snapshot keeps each book uncrossed; its sign is random and it
    is never zero, so every price of the file differs from the previous day.
    """
    n = book.shape[0]
    shift = rng.integers(1, 4, n) * np.where(rng.random(n) < 0.5, -1, 1)
    out = book.copy()
    for col in (0, 2):
        ticks = ins.ticks(book[:, :, col]) + shift[:, None]
        out[:, :, col] = ins.prices(np.maximum(ticks, 1))
    for col in (1, 3):
        redo = rng.random((n, LEVELS)) < 0.2
        fresh = ins.sizes(rng.geometric(0.04, (n, LEVELS)))
        out[:, :, col] = np.where(redo, fresh, book[:, :, col])
    return out


def layer_shapes(total_bytes: int, n_layers: int, width: int) -> list[tuple[int, int]]:
    """Shapes of float32 layers of alternating size that add up to ~total_bytes."""
    weights = [1.0 + (k % 3) * 0.5 for k in range(n_layers)]
    unit = total_bytes / 4 / width / sum(weights)
    return [(max(1, round(w * unit)), width) for w in weights]


def make_layer(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Float32 weights with a fan-in scale, as an initialised-then-trained layer has."""
    scale = np.float32(1.0 / np.sqrt(shape[1]))
    return rng.standard_normal(shape, dtype=np.float32) * scale


def fine_tune(rng: np.random.Generator, layer: np.ndarray) -> np.ndarray:
    """Every weight moves by 0.5e-4 to 1.5e-4 of itself, in a random direction.

    The relative step stays far above float32 epsilon, so no value is left
    unchanged, which is what a fine-tuning step does to a dense layer.
    """
    rel = rng.uniform(0.5e-4, 1.5e-4, layer.shape).astype(np.float32)
    sign = np.where(rng.random(layer.shape) < 0.5, np.float32(-1), np.float32(1))
    tuned: np.ndarray = layer * (np.float32(1) + sign * rel)
    return tuned


def save_array(path: Path, array: np.ndarray) -> None:
    """Write an ``.npy`` through a temporary name, as a careful dumper would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


def load_array(path: Path) -> np.ndarray:
    """Read an ``.npy`` written by :func:`save_array`."""
    return np.asarray(np.load(path, allow_pickle=False))
