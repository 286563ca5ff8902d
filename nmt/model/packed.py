"""Inference-only linear layers with weights pre-packed for oneDNN (CPU).

On CPU, PyTorch runs fp32 ``nn.Linear`` through MKL's GEMM, which packs the weight on every call
and, on AMD processors, runs without AVX-512. oneDNN's linear with a weight packed once
(``torch.ops.mkldnn._reorder_linear_weight``) ran the decoding step's products 1.2-2.4x faster on
the development machine (AMD Zen 4; docs/benchmarks.md, ``bench_kernels.py --only gemm``).
``pack_linears`` swaps every ``nn.Linear`` of a CPU model for a ``PackedLinear`` that holds only
the packed weight: the model can then translate and score, not train or be saved. Results equal
the unpacked layers up to float rounding (a different summation order).

Packing pays where oneDNN can use AVX-512 and MKL cannot (AMD processors): there it is the default
(``default_pack``). Where oneDNN is limited to AVX2 (an AVX2-only CPU, or ``ONEDNN_MAX_CPU_ISA`` or
``DNNL_MAX_CPU_ISA`` capping it) that advantage is gone, so the default is to leave the plain layers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import Tensor, nn

log = logging.getLogger("nmt")

PACKABLE_DTYPES = (torch.float32,)  # what our checkpoints load as; the only dtype tested
_BELOW_AVX512 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")  # ONEDNN_MAX_CPU_ISA values that cap it


def default_pack(flags: frozenset[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether inference packs linear weights for oneDNN when not told, and why (for the log): yes
    where the CPU has AVX-512 (``avx512f``) and the oneDNN cap (``nmt.runtime.onednn_max_isa``) does not
    keep oneDNN below it."""
    from nmt.runtime import cpu_flags, onednn_max_isa

    flags = cpu_flags() if flags is None else flags
    cap = onednn_max_isa(env)
    if not packing_available():
        return False, "oneDNN packed linear layers are not available in this PyTorch build"
    if "avx512f" not in flags:
        return False, "the CPU has no AVX-512: oneDNN's packed weights are not faster than plain layers there"
    if cap in _BELOW_AVX512:
        return False, f"oneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA or DNNL_MAX_CPU_ISA), below AVX-512: plain layers"
    return True, "the CPU has AVX-512: linear layers on oneDNN-packed weights"


def packing_available() -> bool:
    """True when this PyTorch build has oneDNN's packed linear operators."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class PackedLinear(nn.Module):
    """``nn.Linear``'s forward on a oneDNN-packed copy of its weight (no gradients)."""

    def __init__(self, linear: nn.Linear, tied: bool = False) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.tied = tied  # the weight is also a parameter of another module (tied embeddings)
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
        self.register_buffer("packed_weight", packed, persistent=False)  # opaque (out, in)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias, persistent=False)  # (out,) or None

    def parameter_count(self) -> int:
        """The replaced layer's parameters, its weight left out when ``tied`` (counted where it lives)."""
        bias = 0 if self.bias is None else self.out_features
        return bias + (0 if self.tied else self.in_features * self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("PackedLinear is inference-only: it has no gradients (see nmt.model.packed)")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")  # (..., out)


def pack_linears(model: nn.Module) -> int:
    """Replace every CPU fp32 ``nn.Linear`` of ``model`` by a ``PackedLinear``, in place; return
    how many were replaced (0 where oneDNN is unavailable). The model becomes inference-only: put it in
    eval mode first, and do not train or save it afterwards."""
    if model.training:
        raise ValueError("pack_linears: call model.eval() first; a packed model cannot train")
    if not packing_available():
        log.info("oneDNN packed linear layers are not available in this PyTorch build: left unpacked")
        return 0
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear and child.weight.device.type == "cpu" and child.weight.dtype in PACKABLE_DTYPES
    ]
    replaced = {id(child) for _, _, child in targets}
    kept = {p.data_ptr() for m in model.modules() if id(m) not in replaced for p in m.parameters(recurse=False)}
    n = len(targets)
    while targets:  # one plain weight at a time is released, so memory peaks at + one layer, not + the model
        parent, name, child = targets.pop()
        setattr(parent, name, PackedLinear(child, tied=child.weight.data_ptr() in kept))
        del parent, child
    return n
