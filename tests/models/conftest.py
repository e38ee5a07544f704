"""Keep model tests light on a shared machine: one thread, fixed seeds."""

import sys
from pathlib import Path

import pytest
import torch

# Let `pytest tests/models` import `pipeline` from this checkout even when it is not pip-installed.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
