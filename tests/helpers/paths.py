"""Where the repository and the shared data beside it are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NMT_SHARED", REPO.parent / "shared"))
SHARED_DATA = Path(os.environ.get("NMT_SHARED_DATA", SHARED / "data"))
