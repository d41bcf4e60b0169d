"""Backup: walk the source, cut and encode chunks, write packs, commit a snapshot."""
