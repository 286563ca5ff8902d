"""Golden outputs of the model code: what a change to nmt/model or nmt/modules must leave unchanged.

The reproduction campaign's stage-1 runs must all come from one model computation, so model code may
change during a stage only if its outputs stay the same. This module computes, in float64 on fixed
inputs and parameters, for every factor mask in every role (a tiny model) and for the campaign's
stage-1 settings (the campaign's dimensions, a small vocabulary): the teacher-forced logits, the
gradient of a fixed loss (per parameter: sum and sum of squares), and the logits of incremental
decoding steps with a beam reorder. ``tests/golden/model_outputs.pt`` holds them, recorded with

    .venv/bin/python tests/helpers/golden.py --record

and tests/unit/model/test_golden_outputs.py compares. Float64 keeps the comparison independent of
the CPU's vector width: the tolerance (1e-9 relative) is far below any change of computation and far
above float64 reordering noise.
"""

from __future__ import annotations

import sys
from itertools import product
from pathlib import Path

import torch

from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer

FILE = Path(__file__).resolve().parents[1] / "golden" / "model_outputs.pt"
MASKS = ["".join(bits) for bits in product("01", repeat=4) if "1" in bits]
V, PAD, BOS = 64, 0, 1
STAGE1 = {  # label -> (encoder_self, decoder_self, cross): configs/ablation/repro/multi30k-ende/{self,cross}.yaml
    "self-1111": ("1111", "1111", "1111"), "self-0111": ("0111", "0111", "1111"),
    "self-0011": ("0011", "0011", "1111"), "self-0110": ("0110", "0110", "1111"),
    "cross-0111": ("1111", "1111", "0111"), "cross-1000": ("1111", "1111", "1000"),
}


def cases() -> dict[str, ModelConfig]:
    """Every mask in every role of a tiny pre-norm model, a post-norm variant, and the stage-1 settings."""
    out: dict[str, ModelConfig] = {}
    tiny = dict(d_model=16, n_heads=2, d_ff=32, encoder_layers=2, decoder_layers=2, dropout=0.0)
    for mask in MASKS:
        for key in ("encoder_self", "decoder_self", "cross"):
            out[f"tiny-{key}-{mask}"] = ModelConfig(**tiny, **{"encoder_self": "1111", "decoder_self": "1111",
                                                               "cross": "1111", key: mask})
    out["tiny-post-0110"] = ModelConfig(**tiny, norm="post", encoder_self="0110", decoder_self="0110", cross="1000")
    campaign = dict(d_model=256, n_heads=4, d_ff=1024, encoder_layers=3, decoder_layers=3, dropout=0.0,
                    absolute_positions="auto")
    for label, (enc, dec, cross) in STAGE1.items():
        out[f"stage1-{label}"] = ModelConfig(**campaign, encoder_self=enc, decoder_self=dec, cross=cross)
    return out


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    src = torch.randint(3, V, (3, 9), generator=g)
    src_mask = torch.zeros(3, 9, dtype=torch.bool)
    src_mask[1, 6:] = True
    src_mask[2, 4:] = True
    src[src_mask] = PAD
    tgt = torch.randint(3, V, (3, 7), generator=g)
    return src, src_mask, tgt


def outputs(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Logits, gradient summaries and decoding-step logits of ``cfg``'s model, seeded, in float64."""
    torch.manual_seed(0)
    model = Transformer(cfg, V, V, PAD).double()
    src, src_mask, tgt = inputs()
    model.train(False)
    hidden = model(src, src_mask, tgt)
    logits = model.logits(hidden)  # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.roll(-1, 1).reshape(-1))
    loss.backward()
    grads = torch.stack([torch.stack([p.grad.sum(), p.grad.pow(2).sum()]) if p.grad is not None
                         else torch.zeros(2, dtype=torch.float64) for _, p in sorted(model.named_parameters())])
    with torch.no_grad():
        memory = model.encode(src, src_mask)
        state = model.init_state(memory, src_mask)
        beam = 2
        state = model.reorder_state(state, torch.arange(3).repeat_interleave(beam), None)
        tokens = torch.full((3 * beam,), BOS)
        steps = []
        for t in range(4):
            step_logits, state = model.step(tokens, state)  # (B*beam, V)
            steps.append(step_logits)
            tokens = tgt[:, t].repeat_interleave(beam)
            if t == 1:  # a beam reorder: both rows of each sentence continue from its second row
                index = torch.arange(3 * beam).view(3, beam)[:, 1:].repeat(1, beam).flatten()
                state = model.reorder_state(state, index, None)
    return {"logits": logits.detach(), "grads": grads, "steps": torch.stack(steps)}


def record() -> None:
    torch.save({name: outputs(cfg) for name, cfg in cases().items()}, FILE)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    record()
    print(f"recorded {FILE}")
