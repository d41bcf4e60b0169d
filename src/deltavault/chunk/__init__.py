"""Chunkers: FastCDC for streams, element-aligned for .npy, page-aligned for SQLite.

Used by the backup pipeline::

    chunker = select.select_chunker(path, config)   # by magic bytes
    for ref in chunker.split(path):                 # bounded memory
        ...  # ref.offset, ref.length, ref.data, ref.hint → codec.choose(...)

The package itself imports nothing: a restore needs only :mod:`.base` (for the
pipe frames of its processes) and would otherwise pay for pyfastcdc and sqlite3
at every start. Import from the modules: :mod:`.base`, :mod:`.fastcdc`,
:mod:`.npy`, :mod:`.sqlite`, :mod:`.select`.
"""
