"""Case ids and the names of per-channel files: what every reader of a dataset shares.

Case ids become file names, so they are restricted to letters, digits, ``.``, ``_`` and
``-`` and may not start with a dot. Multi-channel cases follow nnU-Net's naming
``<case>_0000``, ``<case>_0001``, ... (:data:`CHANNEL_FILE`).
"""

from __future__ import annotations

import re

from pipeline.errors import PipelineError

CASE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
#: A file stem ``<case>_<XXXX>``: the case id and the four-digit channel index.
CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
SPLITS = ("train", "test")


class ManifestError(PipelineError):
    """The list of cases (a manifest, a dataset.json, an input folder) is missing, malformed or inconsistent."""


def validate_case_id(case: str, where: str = "") -> str:
    """Return ``case`` if it is a safe file name, else raise naming the problem.

    A safe id cannot escape its output folder (no ``/``, no ``..``, no leading dot) and
    needs no quoting in a shell.

    Raises:
        ManifestError: naming ``where`` (e.g. the file and line) and the id.
    """
    if not isinstance(case, str) or not CASE_ID.match(case) or ".." in case:
        raise ManifestError(
            f"{where}case id {case!r} is not allowed: use letters, digits, '.', '_' and '-' only, "
            "not starting with '.' and without '..' (ids become file names)"
        )
    return case
