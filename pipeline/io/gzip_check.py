"""Is a ``.gz`` image complete? SimpleITK reads a truncated ``.nii.gz`` without an error, the missing voxels as 0.

:func:`gzip_problem` first compares the stream's trailer (its last 4 bytes: the
uncompressed size modulo 2**32) with the size a NIfTI header promises, which costs two
small reads; only when they differ, or the size is not known, is the whole stream
decompressed (in 1 MiB chunks, bounded memory) to find truncation or corrupt data.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np


def nifti_size(path: str | os.PathLike[str]) -> int | None:
    """Bytes a gzipped NIfTI-1/2 file holds uncompressed (``vox_offset`` + voxels x ``bitpix`` / 8), or None."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read(540)
    except (OSError, EOFError, zlib.error):
        return None
    for order in ("<", ">"):
        size = int(np.frombuffer(raw[:4], f"{order}i4")[0]) if len(raw) >= 4 else 0
        if size == 348 and len(raw) >= 348:  # NIfTI-1: dim int16[8] at 40, bitpix int16 at 72, vox_offset float32 at 108
            dim, bitpix = np.frombuffer(raw[40:56], f"{order}i2"), int(np.frombuffer(raw[72:74], f"{order}i2")[0])
            offset = float(np.frombuffer(raw[108:112], f"{order}f4")[0])
        elif size == 540 and len(raw) >= 540:  # NIfTI-2: dim int64[8] at 16, bitpix int16 at 14, vox_offset int64 at 168
            dim, bitpix = np.frombuffer(raw[16:80], f"{order}i8"), int(np.frombuffer(raw[14:16], f"{order}i2")[0])
            offset = float(np.frombuffer(raw[168:176], f"{order}i8")[0])
        else:
            continue
        ndim = int(dim[0])
        if not 1 <= ndim <= 7 or bitpix <= 0 or bitpix % 8 or (dim[1 : ndim + 1] < 1).any():
            return None
        return int(offset) + int(np.prod(dim[1 : ndim + 1].astype(np.int64))) * bitpix // 8
    return None


def gzip_problem(path: str | os.PathLike[str], full: bool = False) -> str | None:
    """Describe why a ``.gz`` file is not a complete gzip stream (``truncated gzip stream (...)``), else None.

    ``full`` skips the trailer shortcut: corrupt data inside a stream of the right length
    is found only by reading it all (SimpleITK itself then refuses the file).
    """
    if not str(path).lower().endswith(".gz"):
        return None
    expected = nifti_size(path) if str(path).lower().endswith(".nii.gz") and not full else None
    if expected is not None:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            if int.from_bytes(handle.read(4), "little") == expected % (1 << 32):
                return None
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as err:
        kind = "truncated gzip stream" if isinstance(err, EOFError) else "corrupt gzip data"
        return f"{kind} ({err})"
    return None
