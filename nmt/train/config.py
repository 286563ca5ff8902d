"""Typed configuration of optimisation (``optim:``) and of the training run (``train:``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from nmt.config import ConfigError, field

# Lightning's precision settings (``Trainer(precision=...)``)
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "bf16", "16-mixed", "16-true", "16", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")
# Lightning's accelerator names; the hardware is checked when training starts (``nmt.train.fit``)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


@dataclass
class OptimConfig:
    """Loss, optimiser and learning-rate schedule."""

    optimizer: Literal["adam", "adamw"] = field("adam", help="Adam or AdamW (decoupled weight decay)")
    lr: float = field(5e-4, help="peak learning rate (reached at the end of warm-up)")
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98], help="Adam betas")
    eps: float = field(1e-9, help="Adam epsilon")
    weight_decay: float = field(0.0, help="weight decay")
    fused: bool = field(True, help="fused Adam/AdamW kernel: one pass over all parameters (CPU, CUDA); "
                        "false: PyTorch's for-each implementation")
    schedule: Literal["inverse_sqrt", "cosine", "constant"] = field(
        "inverse_sqrt", help="after linear warm-up: lr * sqrt(warmup/step), cosine decay to min_lr, or constant"
    )
    warmup_steps: int = field(4000, help="linear warm-up steps (from 0 to lr)")
    min_lr: float = field(0.0, help="floor of the cosine schedule")
    label_smoothing: float = field(0.1, help="label smoothing of the cross-entropy (padding ignored)")

    def __post_init__(self) -> None:
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class TrainConfig:
    """The training run: where it writes, how long, validation, checkpoints, and Lightning Trainer flags."""

    output_dir: str = field("runs/default", help="run directory: checkpoints, TensorBoard logs, config, outputs")
    seed: int = field(1, help="random seed (model init, dropout, data order)")
    max_steps: int = field(-1, help="stop after this many optimizer updates (-1: no limit)")
    max_epochs: int = field(-1, help="stop after this many epochs (-1: no limit)")
    max_time_minutes: Optional[float] = field(None, help="stop after this much wall time (checkpoint is written)")
    val_every_steps: int = field(1000, help="validate every N optimizer updates (also at the end of each epoch)")
    val_max_sentences: int = field(0, help="decode only the first N validation sentences for BLEU (0: all)")
    val_decode_beam: int = field(1, help="beam size of validation decoding (1 = greedy)")
    patience: int = field(0, help="early stopping on validation BLEU after N validations without gain (0: off)")
    save_top_k: int = field(3, help="keep the k best checkpoints by validation BLEU (plus last.ckpt)")
    checkpoint_every_steps: int = field(
        0, help="refresh checkpoints/last.ckpt every N updates, whatever validation says (0: off)")
    checkpoint_every_minutes: float = field(
        5.0, help="refresh checkpoints/last.ckpt after this many minutes of training (0: off); with "
        "checkpoint_every_steps, whichever comes first. A killed run resumes losing at most this much work")
    heatmap_sentences: int = field(2, help="validation sentences whose attention maps go to TensorBoard (0: off)")
    log_every_steps: int = field(50, help="log training scalars every N updates")
    accumulate_grad_batches: int = field(1, help="gradient accumulation (updates = batches / N)")
    gradient_clip_val: float = field(0.0, help="clip the gradient norm to this value (0: off)")
    precision: str = field("32-true", help="Lightning precision: 32-true, bf16-mixed, 16-mixed, bf16-true")
    accelerator: str = field("auto", help="Lightning accelerator: auto, cpu, gpu, ...")
    devices: Union[int, str] = field("auto", help="devices per node (int, 'auto', or a list string)")
    num_nodes: int = field(1, help="number of nodes (multi-node DDP/FSDP through Lightning)")
    strategy: str = field("auto", help="Lightning strategy: auto, ddp, ddp_spawn, fsdp, deepspeed...")
    num_threads: int = field(0, help="torch intra-op threads on CPU (0: torch default)")
    compile: bool = field(False, help="torch.compile the model (reports compile time in the log)")

    def __post_init__(self) -> None:
        at_least = {"val_every_steps": 1, "accumulate_grad_batches": 1, "log_every_steps": 1, "val_decode_beam": 1,
                    "num_nodes": 1, "save_top_k": 0, "val_max_sentences": 0, "patience": 0, "heatmap_sentences": 0,
                    "num_threads": 0}
        for key, low in at_least.items():
            if getattr(self, key) < low:
                raise ConfigError(f"train.{key} must be >= {low}, got {getattr(self, key)}")
        for key in ("max_steps", "max_epochs"):
            value = getattr(self, key)
            if value == 0 or value < -1:
                raise ConfigError(f"train.{key} must be -1 (no limit) or >= 1, got {value}")
        if self.max_time_minutes is not None and not self.max_time_minutes >= 0:
            raise ConfigError(f"train.max_time_minutes must be >= 0 (0 or null: no limit), got {self.max_time_minutes}")
        if self.checkpoint_every_steps < 0:
            raise ConfigError(f"train.checkpoint_every_steps must be >= 0 (0: off), got {self.checkpoint_every_steps}")
        if not self.checkpoint_every_minutes >= 0:
            raise ConfigError(
                f"train.checkpoint_every_minutes must be >= 0 (0: off), got {self.checkpoint_every_minutes}")
        if not self.gradient_clip_val >= 0:
            raise ConfigError(f"train.gradient_clip_val must be >= 0 (0: off), got {self.gradient_clip_val}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(f"train.accelerator: {self.accelerator!r} is not one of {', '.join(ACCELERATORS)}")
        if not self.strategy.strip():
            raise ConfigError("train.strategy must be a Lightning strategy name (auto, ddp, fsdp, ...), got ''")
        check_devices(self.devices)


def check_devices(devices: int | str) -> None:
    """ConfigError naming ``train.devices`` unless it is a count >= 1, -1 (all), "auto", or a list of
    device indices ("0,1" or "[0, 1]")."""
    if isinstance(devices, int):
        if devices >= 1 or devices == -1:
            return
    else:
        text = devices.strip()
        if text in ("auto", "-1"):
            return
        items = [t.strip() for t in text.strip("[]").split(",") if t.strip()]
        if items and all(t.isdigit() for t in items) and (text.startswith("[") or "," in text or int(items[0]) >= 1):
            return
    raise ConfigError(f"train.devices must be a number of devices >= 1, -1 (all), 'auto' or a list of device "
                      f"indices such as '0,1', got {devices!r}")
