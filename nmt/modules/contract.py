"""The contract every mechanism keeps, as checks that run on any registered one (yours included).

Each check builds the mechanism from a spec in one role, small and in float64, and raises
``ContractError`` saying what broke:

- ``shapes``: ``forward`` maps (B, T, D) to (B, T, D), finite.
- ``padding``: a padded row's real positions equal the same row run alone, unpadded (self roles:
  padding in ``x``; cross: padding in ``memory``), whatever the padded positions hold.
- ``causal`` (decoder, cross): position t does not depend on inputs after t.
- ``step`` (decoder, cross): ``step`` position by position equals ``forward`` on the prefix,
  through a beam-search reorder of the rows (``reorder_state``) halfway; in the cross role also
  with several queries per memory row at each step (the hypotheses of one sentence).
- ``gradients``: every parameter gets a finite, non-zero gradient in training mode.
- ``flops``: the analytic ``flops`` (+ ``shared_flops``) of one sequence of 12 over 12 lies between
  ``FLOPS_LOW`` and ``FLOPS_HIGH`` times the matrix-product FLOPs PyTorch counts
  (``torch.utils.flop_counter``). The analytic count adds softmax and elementwise work that the
  counter leaves out (2-12 % for every built-in mechanism at this size), so it may be a little
  higher; a kernel may compute a few products the formula need not, so it may be a little lower;
  a count outside these bounds is a wrong formula (a missed or doubled product is >= 25 %).

``check_mechanism(spec)`` runs them all; ``contract_cases()`` lists (spec, role) for every
registered mechanism's declared examples, which is what the test suite runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from nmt.modules.base import Mixer, Role, reorder_state
from nmt.modules.options import MECHANISMS, BuildContext
from nmt.modules.spec import SpecError, parse_spec

D_MODEL, N_HEADS = 16, 2
FLOPS_LOW, FLOPS_HIGH = 0.9, 1.25  # analytic / counted (see the module docstring)
ATOL = 1e-9  # float64: equal up to rounding


class ContractError(AssertionError):
    """A mechanism breaks the contract; the message names the spec, role and check."""


def build(spec: str, role: Role, d_model: int = D_MODEL, n_heads: int = N_HEADS) -> Mixer:
    """The mixer of ``spec`` in ``role`` (layer 0 of 2), float64, eval mode, no dropout."""
    from nmt.modules.registry import build_mixer

    mixer = build_mixer(parse_spec(spec), BuildContext(d_model, n_heads, role, 0, 2, 0.0))
    if mixer is None:
        raise ContractError(f"{spec}: removes the sublayer; there is nothing to check")
    return mixer.double().eval()


def contract_cases() -> list[tuple[str, Role]]:
    """(spec, role) for every registered mechanism's examples, in every declared role they fit."""
    from nmt.modules.registry import resolve

    cases: list[tuple[str, Role]] = []
    seen = set()
    for entry in MECHANISMS.values():
        if entry.name in seen:  # aliases share the entry
            continue
        seen.add(entry.name)
        for spec in entry.examples:
            for role in entry.roles:
                try:
                    resolve(parse_spec(spec), BuildContext(D_MODEL, N_HEADS, role, 0, 2, 0.0))
                except SpecError:
                    continue  # e.g. an option for the cross role only
                cases.append((spec, role))
    return cases


def _inputs(role: Role, lengths: list[int], seed: int, mem_lengths: list[int] | None = None):
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    x = torch.randn(B, T, D_MODEL, generator=g, dtype=torch.float64)
    pad = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T)
    memory = mem_pad = None
    if role == "cross":
        mem_lengths = mem_lengths or [7] * B
        S = max(mem_lengths)
        memory = torch.randn(B, S, D_MODEL, generator=g, dtype=torch.float64)
        mem_pad = torch.arange(S)[None, :] >= torch.tensor(mem_lengths)[:, None]  # (B, S)
    return x, pad, memory, mem_pad


def _run(m: Mixer, x: Tensor, pad: Tensor | None, memory: Tensor | None, mem_pad: Tensor | None) -> Tensor:
    if m.role == "cross":
        return m(x, memory=memory, memory_padding_mask=mem_pad)
    return m(x, padding_mask=pad)


def _fail(spec: str, role: str, check: str, what: str) -> ContractError:
    return ContractError(f"{spec} ({role}): {check}: {what}")


def check_shapes(spec: str, role: Role) -> None:
    m = build(spec, role)
    x, pad, memory, mem_pad = _inputs(role, [6, 6], seed=1)
    y = _run(m, x, None, memory, None)
    if y.shape != x.shape:
        raise _fail(spec, role, "shapes", f"forward gave {tuple(y.shape)} for input {tuple(x.shape)}")
    if not torch.isfinite(y).all():
        raise _fail(spec, role, "shapes", "forward gave non-finite values")


def check_padding(spec: str, role: Role) -> None:
    m = build(spec, role)
    cross = role == "cross"
    lengths, mem_lengths = ([7, 7, 7], [7, 3, 5]) if cross else ([7, 3, 5], None)
    x, pad, memory, mem_pad = _inputs(role, lengths, seed=2, mem_lengths=mem_lengths)
    with torch.no_grad():
        y = _run(m, x, pad, memory, mem_pad)
        noisy = x.masked_fill(pad.unsqueeze(-1), 1e3) if not cross else x
        noisy_mem = memory.masked_fill(mem_pad.unsqueeze(-1), 1e3) if cross else None
        y2 = _run(m, noisy, pad, noisy_mem if cross else None, mem_pad)
        for b in range(len(lengths)):
            n = lengths[b]
            if cross:
                s = mem_lengths[b]  # type: ignore[index]
                alone = m(x[b : b + 1], memory=memory[b : b + 1, :s], memory_padding_mask=None)  # type: ignore[index]
            else:
                alone = m(x[b : b + 1, :n], padding_mask=None)
            for got, what in ((y, "padded batch"), (y2, "padding holding large values")):
                err = (got[b, :n] - alone[0, :n]).abs().max().item()
                if err > 1e-7:
                    raise _fail(spec, role, "padding",
                                f"row {b} in a {what} differs from the row alone by {err:.2e}")


def check_causal(spec: str, role: Role) -> None:
    if role == "encoder":
        return
    m = build(spec, role)
    x, _, memory, _ = _inputs(role, [6, 6], seed=3)
    with torch.no_grad():
        y = _run(m, x, None, memory, None)
        for t in range(1, 6):
            changed = x.clone()
            changed[:, t:] += torch.randn_like(changed[:, t:])
            err = (_run(m, changed, None, memory, None)[:, :t] - y[:, :t]).abs().max().item()
            if err > ATOL:
                raise _fail(spec, role, "causal", f"positions before {t} change by {err:.2e} when later inputs change")


def check_step(spec: str, role: Role) -> None:
    if role == "encoder":
        return
    m = build(spec, role)
    cross = role == "cross"
    B, T = 3, 6
    x, _, memory, mem_pad = _inputs(role, [T] * B, seed=4, mem_lengths=[7, 4, 6])
    index = torch.tensor([1, 1, 0])  # a beam reorder: row 0 continues row 1's prefix, row 2 row 0's
    state = None
    prefix = x[:, :0]
    with torch.no_grad():
        for t in range(T):
            if t == T // 2:
                state = reorder_state(state, index)
                prefix = prefix[index]
                if cross:
                    memory, mem_pad = memory[index], mem_pad[index]  # type: ignore[index]
            prefix = torch.cat([prefix, x[:, t : t + 1]], dim=1)
            if cross:
                y_t, state = m.step(x[:, t : t + 1], state, memory=memory, memory_padding_mask=mem_pad)
            else:
                y_t, state = m.step(x[:, t : t + 1], state)
            want = _run(m, prefix, None, memory, mem_pad)[:, -1]
            err = (y_t[:, 0] - want).abs().max().item()
            if err > ATOL:
                raise _fail(spec, role, "step", f"step {t} differs from forward on the prefix by {err:.2e}"
                            + (" (after a beam reorder)" if t >= T // 2 else ""))
        if cross:  # n queries per memory row at one position (beam hypotheses of one sentence)
            n = 2
            queries = torch.randn(B, T, n, D_MODEL, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
            wants = [_run(m, queries[:, :, j], None, memory, mem_pad) for j in range(n)]  # each (B, T, D)
            state = None
            for t in range(T):
                y_t, state = m.step(queries[:, t], state, memory=memory, memory_padding_mask=mem_pad)  # (B, n, D)
                err = max((y_t[:, j] - wants[j][:, t]).abs().max().item() for j in range(n))
                if err > ATOL:
                    raise _fail(spec, role, "step", f"step {t} with {n} queries per memory row differs from"
                                f" forward by {err:.2e}")


def check_gradients(spec: str, role: Role) -> None:
    m = build(spec, role).train()
    x, pad, memory, mem_pad = _inputs(role, [7, 5], seed=5, mem_lengths=[7, 6])
    y = _run(m, x, pad if role != "cross" else None, memory, mem_pad)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(6), dtype=y.dtype)
    (y * weights).sum().backward()
    for name, p in m.named_parameters():
        if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0:
            raise _fail(spec, role, "gradients", f"parameter {name} gets {'no' if p.grad is None else 'a zero or non-finite'}"
                        " gradient")


def check_flops(spec: str, role: Role) -> None:
    m = build(spec, role)
    T = S = 12
    x, _, memory, _ = _inputs(role, [T], seed=7, mem_lengths=[S])
    counter = FlopCounterMode(display=False, custom_mapping=_SDPA_CPU)
    with torch.no_grad(), counter:
        _run(m, x, None, memory, None)
    counted = counter.get_total_flops()
    analytic = m.flops(T, S if role == "cross" else None) + m.shared_flops(T, S if role == "cross" else None)
    if counted == 0:
        return  # no matrix product to compare against (elementwise work only)
    ratio = analytic / counted
    if not FLOPS_LOW <= ratio <= FLOPS_HIGH:
        raise _fail(spec, role, "flops", f"flops() gives {analytic:,} where PyTorch counts {counted:,} in matrix"
                    f" products (ratio {ratio:.2f}, allowed {FLOPS_LOW:g} to {FLOPS_HIGH:g})")


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# PyTorch's counter knows the GPU kernels of scaled_dot_product_attention, not the CPU one.
_SDPA_CPU = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


CHECKS: dict[str, Callable[[str, Role], None]] = {
    "shapes": check_shapes, "padding": check_padding, "causal": check_causal, "step": check_step,
    "gradients": check_gradients, "flops": check_flops,
}


def check_mechanism(spec: str, roles: tuple[Role, ...] | None = None) -> None:
    """Run every check on ``spec`` in ``roles`` (default: the roles its mechanism declares and its
    options fit); ContractError on the first failure."""
    for case_spec, role in cases_for(spec, roles):
        for check in CHECKS.values():
            check(case_spec, role)


def cases_for(spec: str, roles: tuple[Role, ...] | None = None) -> Iterator[tuple[str, Role]]:
    """(spec, role) for ``roles``, or for every role that all its terms declare and its options fit."""
    from nmt.modules.registry import lookup, resolve

    parsed = parse_spec(spec)
    declared = set.intersection(*(set(lookup(t).roles) for t in parsed.terms))
    for role in roles or tuple(r for r in ("encoder", "decoder", "cross") if r in declared):
        try:
            resolve(parsed, BuildContext(D_MODEL, N_HEADS, role, 0, 2, 0.0))
        except SpecError:
            if roles:
                raise
            continue
        yield spec, role  # type: ignore[misc]
