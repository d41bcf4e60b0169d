"""Cut the top of a snapshot into parts that separate processes restore.

Why: restoring many small files is bound by Python's interpreter lock, not
by the disk: each file is a few native calls glued by Python, and at 200,000
files of 1-4 KiB one process keeps two cores ~1.3 busy. Two processes, each
with its own lock, restore disjoint parts at the same time (see
:mod:`~deltavault.restore.procs`).

The coordinator walks only the top levels: breadth first, making each
directory it enters, until the walk reaches ``want`` subdirectories (or
would read more than ``max_trees`` trees). What it reached becomes
:class:`Unit` s: each subdirectory not entered is one unit (restored whole,
its metadata included, by whichever process takes it), and the other
entries of an entered directory are cut into units of at most
``files_per_unit``. The directories the coordinator made are finished by it,
deepest first, once every unit is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node
from deltavault.repo.walk import load_tree
from deltavault.restore.fsdir import Dir, make_dir, remove_leftovers
from deltavault.restore.plan import DirDone

#: entries (other than directories) of one directory a unit holds at most
FILES_PER_UNIT = 256
#: trees the coordinator reads at most before it stops descending
MAX_TREES = 64


@dataclass
class Unit:
    """Entries of one directory (made already) that one process restores."""

    dir: Dir
    nodes: list[Node]


@dataclass
class Split:
    """The units, and the directories the coordinator made (in the order made)."""

    units: list[Unit] = field(default_factory=list)
    made: list[DirDone] = field(default_factory=list)


def split_tree(repo: Repository, tree_id: bytes, root: Dir, *, want: int,
               in_place: bool = True, max_trees: int = MAX_TREES,
               files_per_unit: int = FILES_PER_UNIT) -> Split:
    """Units that together restore the tree ``tree_id`` below ``root``."""
    out = Split()
    level: list[tuple[Dir, list[Node]]] = [
        (root, load_tree(repo, tree_id, cache=False).nodes)]
    trees = 1
    while True:
        subdirs = sum(n.tree_below() is not None for _d, nodes in level for n in nodes)
        if subdirs == 0 or subdirs >= want or trees + subdirs > max_trees:
            break
        below: list[tuple[Dir, list[Node]]] = []
        for d, nodes in level:
            _add_entries(out, d, [n for n in nodes if n.tree_below() is None], files_per_unit)
            for node in nodes:
                sub = node.tree_below()
                if sub is None:
                    continue
                child, replaces, existed = make_dir(d, node.name)
                if existed and in_place:
                    remove_leftovers(child)
                out.made.append(DirDone(child, node, replaces))
                below.append((child, load_tree(repo, sub, cache=False).nodes))
                trees += 1
        level = below
    for d, nodes in level:
        _add_entries(out, d, [n for n in nodes if n.tree_below() is None], files_per_unit)
        out.units.extend(Unit(d, [n]) for n in nodes if n.tree_below() is not None)
    return out


def _add_entries(out: Split, d: Dir, nodes: list[Node], per_unit: int) -> None:
    for start in range(0, len(nodes), per_unit):
        out.units.append(Unit(d, nodes[start:start + per_unit]))
