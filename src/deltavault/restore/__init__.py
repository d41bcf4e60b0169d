"""Restore: snapshots back into directories, and atomic rollback of a live tree."""
