"""``results/config.json``: the resolved config that every job reads.

The workflow writes it from its ``onstart`` handler, which Snakemake runs only when jobs
are about to run (not for a dry run, ``--lint``, ``--report`` or a run with nothing to do).
It is rewritten only when its text changes, so its timestamp says when the config last
changed; no rule declares it as an input, so the timestamp reruns nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def config_text(config: Mapping[str, Any]) -> str:
    """The resolved config as the JSON text of ``results/config.json`` (keys sorted)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def write_if_changed(path: str | os.PathLike[str], text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless the file already holds exactly it.

    Returns:
        Whether the file was written.
    """
    target = Path(path)
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    return True
