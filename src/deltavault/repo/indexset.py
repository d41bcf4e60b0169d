"""The whole index as destructive operations need it: every file read, or none.

:meth:`Repository.load_index` skips a damaged index file so that one bad
file does not block restores. ``prune`` and ``repair index`` cannot work
that way: a skipped file's blobs would look unused and be deleted
(docs/format.md §11). :func:`load_strict` refuses instead, naming the file.
:func:`write_index_files` writes a set of index records as several files of
bounded size, so a large repository never produces one file past the
reader's size limit (docs/format.md §6).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deltavault.errors import IntegrityError, ObjectNotFound, RepositoryError
from deltavault.repo import layout
from deltavault.repo.distinct import distinct
from deltavault.repo.index import RECORD_DTYPE, IndexFile, MasterIndex
from deltavault.repo.repository import Repository

#: records per index file prune and repair write: 262,144 × 82 B ≈ 21 MiB of plaintext,
#: far below the reader's 2 GiB limit and small enough to hold while writing
MAX_RECORDS_PER_FILE = 1 << 18


def read_all(repo: Repository) -> list[tuple[str, IndexFile]]:
    """Every stored index file, decrypted and parsed.

    A damaged file that a readable one supersedes is skipped: a crash
    before prune or ``repair index`` deleted it leaves such files, and
    readers ignore them anyway.

    Raises:
        RepositoryError: an index file that counts is missing after listing,
            does not match its name, does not decrypt or does not parse
            (exit 13, naming the file).
    """
    files: list[tuple[str, IndexFile]] = []
    damaged: list[tuple[str, Exception]] = []
    for iid in sorted(repo.objects.index_ids()):
        try:
            files.append((iid, repo.load_index_file(iid)))
        except (ObjectNotFound, RepositoryError) as exc:
            damaged.append((iid, exc))
    superseded = {s.hex() for _, f in files for s in f.supersedes}
    for iid, error in damaged:
        if iid in superseded:
            continue
        message = str(error)
        if layout.index_key(iid) not in message:
            message = f"{layout.index_key(iid)}: {message}"
        raise IntegrityError(message, hint="run 'deltavault repair index'") from error
    return files


def load_strict(repo: Repository) -> list[str]:
    """Load every index file into ``repo.index`` or raise; returns every stored index id."""
    ids = sorted(repo.objects.index_ids())
    files = read_all(repo)
    index = MasterIndex()
    index.load(files)
    repo.index = index
    repo.damaged_indexes = []
    repo._index_loaded = True  # the strict path of Repository.load_index
    return sorted(set(ids) | {iid for iid, _ in files})


def write_index_files(repo: Repository, pack_ids: list[str], records: npt.NDArray[np.void],
                      supersedes: list[str], *,
                      max_records: int = MAX_RECORDS_PER_FILE) -> list[str]:
    """Store ``records`` (their ``pack`` field indexes ``pack_ids``) as bounded index files.

    Records of one pack stay in one file. Only the last file written names
    ``supersedes``: until it exists, readers load the old and the new files
    together (the same blobs twice, every copy valid, since nothing is
    deleted before this returns), and once it exists every new file does.

    Returns:
        The ids of the files written, in order.
    """
    if max_records < 1:
        raise ValueError("max_records must be positive")
    order = np.argsort(records["pack"], kind="stable")
    records = records[order]
    sup = [bytes.fromhex(s) for s in supersedes]
    written: list[str] = []
    start = 0
    n = len(records)
    while start < n or (not written and n == 0):
        end = min(start + max_records, n)
        # never split one pack across files: extend to the pack's last record
        if 0 < end < n:
            last_pack = records["pack"][end - 1]
            end = int(np.searchsorted(records["pack"], last_pack, side="right"))
        chunk = records[start:end].copy()
        used = distinct(chunk["pack"]) if len(chunk) else np.zeros(0, dtype="<u4")
        remap = np.zeros(len(pack_ids) or 1, dtype="<u4")
        remap[used] = np.arange(len(used), dtype="<u4")
        if len(chunk):
            chunk["pack"] = remap[chunk["pack"]]
        file = IndexFile([bytes.fromhex(pack_ids[int(p)]) for p in used],
                         chunk.astype(RECORD_DTYPE, copy=False), sup if end >= n else [])
        written.append(repo.save_index(file))
        start = end
        if n == 0:
            break
    return written
