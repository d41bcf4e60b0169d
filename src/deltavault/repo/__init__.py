"""The repository format: config, keys, packs, index, snapshots, trees, locks; Repository."""
