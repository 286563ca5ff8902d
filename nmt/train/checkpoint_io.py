"""Lightning's checkpoint writing, made atomic: temp file, fsync, then rename (``nmt.io``)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from nmt.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO whose saves are atomic on local filesystems (the old file, if any,
    stays intact until the rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)
