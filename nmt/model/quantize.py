"""Int8 inference: every ``nn.Linear`` of a CPU model run as a dynamically quantized int8 layer.

``quantize_linears`` applies PyTorch's own dynamic quantization (``torch.ao.quantization.quantize_dynamic``
with ``per_channel_dynamic_qconfig``): each weight is stored as int8 with one scale per output
channel (symmetric), each activation is quantized per call with a scale taken from its own range
(uint8), the product accumulates in int32 and comes back as float32 with the bias added. Softmax,
layer norm, embeddings and the search stay float32. Nothing here is hand-written: the kernels are
FBGEMM's or oneDNN's, chosen by ``torch.backends.quantized.engine`` (``engine`` below).

This covers every mechanism and combination of ``nmt.modules``: their projections are ``nn.Linear``
(factored attention's q/k/v/r/out, deformable's value/offsets/weights/out, salient attention's
projections, the convolutions' in/out and kernel projections), as are the feed-forward layers and
the output projection; parameters used directly (u, v, lightweight convolution kernels, embeddings)
stay float32. The model becomes inference-only, like ``nmt.model.packed``.

PyTorch 2.13 marks ``torch.ao.quantization`` and its quantized tensor types as deprecated (their
successor is the separate ``torchao`` package, whose CPU int8 path is not in this environment); the
warnings they print at conversion are silenced here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

QUANTIZE_MODES = ("int8",)
ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")


_LINEAR_DYNAMIC = torch.ops.quantized.linear_dynamic.default
# The operator's C++ entry point, without the Python-side argument checks of ``OpOverload.__call__``
# (private in PyTorch 2.13: where it is missing, the public overload is called instead).
_LINEAR_DYNAMIC_KERNEL = getattr(_LINEAR_DYNAMIC, "_op", _LINEAR_DYNAMIC)


class Int8Linear(torch.ao.nn.quantized.dynamic.Linear):
    """PyTorch's dynamic int8 linear layer, called through its kernel directly: the same kernel,
    weights and results, without the generic layer's and the operator's per-call Python checks
    (about 10 us per call on a 2-vCPU Xeon, several per cent of a greedy decoding step, which
    calls 37 of them)."""

    _kernel = staticmethod(_LINEAR_DYNAMIC_KERNEL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._kernel(x, self._packed_params._packed_params, True)  # reduce_range, as the layer's own forward


def quantized_linear_type() -> type[nn.Module]:
    """The module class that replaces ``nn.Linear`` in a quantized model."""
    return Int8Linear


def set_engine(engine: str | None) -> str:
    """Select the int8 kernel library (``None``: keep PyTorch's default, "x86" on x86 CPUs); return it."""
    if engine is not None:
        if engine not in ENGINES or engine not in torch.backends.quantized.supported_engines:
            raise ValueError(
                f"quantized engine {engine!r} is not available; this PyTorch build has "
                f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}"
            )
        torch.backends.quantized.engine = engine
    return torch.backends.quantized.engine


def quantize_linears(model: nn.Module, mode: str = "int8", engine: str | None = None) -> int:
    """Replace every ``nn.Linear`` of the eval-mode CPU ``model`` by a dynamic int8 linear layer (per-channel
    weight scales, per-call activation scales), in place; return how many were replaced."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {mode!r}")
    if model.training:
        raise ValueError("quantize_linears: call model.eval() first; a quantized model cannot train")
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"int8 decoding runs on CPU; the model is on {', '.join(sorted(devices))}")
    set_engine(engine)  # weights are packed for the engine selected now; it must stay selected
    n = sum(type(m) is nn.Linear for m in model.modules())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*deprecated")
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        torch.ao.quantization.quantize_dynamic(
            model,
            {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            mapping={nn.Linear: Int8Linear},
            inplace=True,
        )
    return n
