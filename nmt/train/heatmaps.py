"""Attention heatmaps of a few validation sentences, per layer and role, for TensorBoard."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from nmt.model.transformer import Transformer
from nmt.modules.base import Mixer


@contextlib.contextmanager
def recording(model: Transformer) -> Iterator[list[tuple[str, Mixer]]]:
    """Enable ``record_weights`` on every mixer (and its branches) for the duration of the block."""
    named: list[tuple[str, Mixer]] = []
    for role, mixers in model.mixers().items():
        for i, m in enumerate(mixers):
            if m is None:
                continue
            parts = list(m.branches) if hasattr(m, "branches") else [m]
            for j, part in enumerate(parts):
                suffix = f".{j}:{type(part).__name__}" if len(parts) > 1 else f":{type(part).__name__}"
                named.append((f"{role}/layer{i}{suffix}", part))
    for _, m in named:
        m.record_weights = True
    try:
        yield named
    finally:
        for _, m in named:
            m.record_weights = False
            m.last_weights = None


@torch.no_grad()
def attention_maps(model: Transformer, batch, n: int) -> dict[str, torch.Tensor]:
    """Head-averaged weight maps (T, S) of the first ``n`` sentences: {"role/layer:Mech/sent": map}."""
    n = min(n, batch.src.size(0))
    out: dict[str, torch.Tensor] = {}
    with recording(model) as named:
        model(batch.src[:n], batch.src_padding_mask[:n], batch.tgt_in[:n])
        for name, m in named:
            w = m.last_weights
            if w is None or w.dim() != 4:
                continue
            for s in range(n):
                src_len = int((~batch.src_padding_mask[s]).sum())
                tgt_len = int((~batch.tgt_padding_mask[s]).sum())
                rows = src_len if name.startswith("encoder") else tgt_len
                cols = src_len if not name.startswith("decoder") else tgt_len
                out[f"{name}/sent{s}"] = w[s].float().mean(0)[:rows, :cols].cpu()
    return out


def log_attention_heatmaps(module, batch, n: int) -> None:
    """Write heatmap figures to the module's TensorBoard logger (rank 0 only)."""
    if not module.trainer.is_global_zero:
        return
    exp = getattr(module.logger, "experiment", None)
    if exp is None or not hasattr(exp, "add_figure"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, w in attention_maps(module.model, batch, n).items():
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(w.numpy(), aspect="auto", cmap="viridis")
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
        ax.set_title(name, fontsize=7)
        exp.add_figure(f"attention/{name}", fig, module.global_step)
        plt.close(fig)
