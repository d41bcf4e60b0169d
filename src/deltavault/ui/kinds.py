"""Which kind of trading data a file holds, from its path (for charts and summaries).

The console groups stored bytes by what the data is — order books, DB
pages, model weights, logs — because dedup and the delta codecs behave very
differently on each (docs/codecs.md). A name is all a tree records without
reading content, and the layouts trading systems use name their parts
(``orderbooks/``, ``models/``, ``positions.sqlite``, ``trades.jsonl``), so
the rule is by extension first and directory words second.
"""

from __future__ import annotations

ORDER_BOOKS = "order books"
DB_PAGES = "DB pages"
MODEL_WEIGHTS = "model weights"
LOGS = "logs"
CONFIG = "config"
OTHER = "other"
#: every kind, in the order charts and tables show them
KINDS = (ORDER_BOOKS, DB_PAGES, MODEL_WEIGHTS, LOGS, CONFIG, OTHER)

_DB = (".sqlite", ".sqlite3", ".db", ".copy", ".dump", ".rdb")
_WEIGHTS = (".safetensors", ".pt", ".pth", ".onnx", ".ckpt", ".h5")
_ARRAYS = (".npy", ".npz", ".parquet", ".arrow", ".feather")
_LOGS = (".jsonl", ".ndjson", ".log", ".csv")
_CONFIG = (".json", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".conf")
_MODEL_WORDS = ("model", "weight", "checkpoint", "layer")

#: summary kinds: what :mod:`deltavault.ui.summaries` can say about a file
NPY, SQLITE, JSONL = "npy", "sqlite", "jsonl"


def data_kind(path: str) -> str:
    """The data kind of a file at ``path`` inside a snapshot."""
    low = path.lower()
    name = low.rsplit("/", 1)[-1]
    if name.endswith(_DB):
        return DB_PAGES
    if name.endswith(_WEIGHTS):
        return MODEL_WEIGHTS
    if name.endswith(_ARRAYS):
        return MODEL_WEIGHTS if any(w in low for w in _MODEL_WORDS) else ORDER_BOOKS
    if name.endswith(_LOGS):
        return LOGS
    if name.endswith(_CONFIG):
        return CONFIG
    return OTHER


def summary_kind(path: str) -> str | None:
    """Which summary fits the file (``npy``, ``sqlite``, ``jsonl``), or None."""
    name = path.lower().rsplit("/", 1)[-1]
    if name.endswith(".npy"):
        return NPY
    if name.endswith((".sqlite", ".sqlite3", ".db")):
        return SQLITE
    if name.endswith((".jsonl", ".ndjson")):
        return JSONL
    return None
