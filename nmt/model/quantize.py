"""Int8 inference: every ``nn.Linear`` of a CPU model run as a dynamically quantized int8 layer.

``quantize_linears`` applies PyTorch's own dynamic quantization (``torch.ao.quantization.quantize_dynamic``
with ``per_channel_dynamic_qconfig``): each weight is stored as int8 with one scale per output
channel (symmetric), each activation is quantized per call with a scale taken from its own range
(uint8), the product accumulates in int32 and comes back as float32 with the bias added. Softmax,
layer norm, embeddings and the search stay float32. Nothing here is hand-written: the kernels are
FBGEMM's or oneDNN's, chosen by ``torch.backends.quantized.engine`` (``engine`` below).

The default engine is oneDNN where it can use AMX int8 tiles (its kernels then use them: 1.3-2.9x
FBGEMM's speed on an encoder batch's 1,056 rows, 1.12x for beam 5 decoding overall, the same for
greedy, on a 2-vCPU Xeon; docs/benchmarks.md "The int8 kernels") and PyTorch's own choice elsewhere
("x86": FBGEMM). oneDNN can use AMX where the CPU has it and ``ONEDNN_MAX_CPU_ISA`` (or
``DNNL_MAX_CPU_ISA``) does not cap it below AMX. Activations are quantized to 7 bits
(``reduce_range``, as PyTorch's layer does: the AVX2 kernels' 16-bit intermediate sums saturate
with 8) except on oneDNN with AMX, whose int8 products accumulate in 32 bits directly.

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

import functools
import warnings
from collections.abc import Callable, Mapping

import torch
from torch import nn

from nmt.model.layers import FeedForward
from nmt.runtime import cpu_flags, onednn_max_isa

QUANTIZE_MODES = ("int8",)
ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")


def _dispatcher_call(op: torch._ops.OpOverload) -> Callable[..., torch.Tensor]:
    """``op`` (``quantized::linear_dynamic`` or its ReLU variant) called through the dispatcher
    directly (``x, packed, reduce_range``).

    The operator's Python entry points check every argument for ``__torch_function__``; on the
    packed weights (a ``torch.ScriptObject``) that lookup fails by throwing a C++ exception, about
    10 us per call on a 2-vCPU Xeon, several per cent of a greedy decoding step (37 calls). The
    boxed dispatcher call takes the same kernel without that check (private in PyTorch 2.13: where
    it is missing, the public overload is called instead)."""
    call_boxed = getattr(torch._C, "_dispatch_call_boxed", None)
    handle = getattr(op, "_handle", None)
    if call_boxed is None or handle is None:
        return op
    return functools.partial(call_boxed, handle)


_LINEAR = _dispatcher_call(torch.ops.quantized.linear_dynamic.default)
_LINEAR_RELU = _dispatcher_call(torch.ops.quantized.linear_relu_dynamic.default)


class Int8Linear(torch.ao.nn.quantized.dynamic.Linear):
    """PyTorch's dynamic int8 linear layer, called through the dispatcher directly (the same kernel,
    weights and results, without the generic layer's and the operator's per-call Python checks).

    ``reduce_range``: activations quantized to 7 bits, as the layer's own forward does, or to 8
    where the kernel accumulates in 32 bits (``full_range_activations``). ``relu``: the kernel also
    applies the ReLU that follows the layer (``fuse_relus``); a layer runs one kernel or the other
    for its whole life (oneDNN keeps one prepared computation per packed weight and input shape,
    built by the first call, whichever kernel it came from)."""

    reduce_range: bool = True
    relu: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = _LINEAR_RELU if self.relu else _LINEAR
        return kernel(x, self._packed_params._packed_params, self.reduce_range)


def quantized_linear_type() -> type[nn.Module]:
    """The module class that replaces ``nn.Linear`` in a quantized model."""
    return Int8Linear


def has_amx_int8(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has AMX int8 tiles (the kernel's ``amx_int8`` flag)."""
    return "amx_int8" in (cpu_flags() if flags is None else flags)


def onednn_uses_amx(flags: frozenset[str] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Whether oneDNN's int8 kernels run on AMX tiles: the CPU has AMX int8 and the oneDNN
    instruction-set cap (``nmt.runtime.onednn_max_isa``), if any, is an AMX one or "ALL"."""
    cap = onednn_max_isa(env)
    return has_amx_int8(flags) and (cap in ("", "ALL", "DEFAULT") or "AMX" in cap)


def default_engine(flags: frozenset[str] | None = None, env: Mapping[str, str] | None = None) -> str:
    """The int8 kernel library used when none is asked for: oneDNN where it runs on AMX
    (``onednn_uses_amx``) and this PyTorch build has it, otherwise PyTorch's own default ("x86" on
    x86 CPUs)."""
    if onednn_uses_amx(flags, env) and "onednn" in torch.backends.quantized.supported_engines:
        return "onednn"
    return torch.backends.quantized.engine


def full_range_activations(
    engine: str, flags: frozenset[str] | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Whether int8 layers packed for ``engine`` quantize activations to 8 bits instead of 7: only on
    oneDNN running on AMX, whose products accumulate in 32 bits (no 16-bit saturation to guard)."""
    return engine == "onednn" and onednn_uses_amx(flags, env)


def set_engine(engine: str | None) -> str:
    """Select the int8 kernel library (``None``: ``default_engine()``); return it."""
    engine = default_engine() if engine is None else engine
    if engine not in ENGINES or engine not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"quantized engine {engine!r} is not available; this PyTorch build has "
            f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}"
        )
    torch.backends.quantized.engine = engine
    return engine


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
    engine = set_engine(engine)  # weights are packed for the engine selected now
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
    reduce_range = not full_range_activations(engine)
    for m in model.modules():
        if isinstance(m, Int8Linear):
            m.reduce_range = reduce_range
    fuse_relus(model)
    return n


def fuse_relus(model: nn.Module) -> int:
    """Let the int8 first layer of every ReLU feed-forward block apply the ReLU itself (one kernel
    call instead of two, the same numbers); return how many blocks changed. Called on freshly
    converted layers only (``Int8Linear.relu``); a fused block has no ReLU module left."""
    n = 0
    for m in model.modules():
        if isinstance(m, FeedForward) and type(m.act) is nn.ReLU and type(m.fc1) is Int8Linear:
            m.fc1.relu, m.act = True, nn.Identity()
            n += 1
    return n
