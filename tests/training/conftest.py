"""Make ``import training`` resolve to this checkout, not to another editable install of recserve.

The shared venv has recserve installed in editable mode from the main checkout; without this, running
``pytest`` inside a worktree would silently test the main checkout's ``training`` package.
"""

import sys
from pathlib import Path

import torch

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[0] != REPO_ROOT:
    sys.path.insert(0, REPO_ROOT)
for name in [m for m in sys.modules if m == "training" or m.startswith("training.")]:
    del sys.modules[name]

torch.set_num_threads(1)  # tests share a 2-core machine; tiny problems gain nothing from more threads
