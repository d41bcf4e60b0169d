"""Repository operations over committed snapshots: check, forget, prune, copy, repair, audit."""
