"""Whether every commit a campaign family's records name trains the same models, bit for bit.

A run's record names the commit of each process that trained it (``code_versions``); a long stage
spans many commits. This script takes every commit the family's committed records name, extracts that
commit's ``nmt/`` package and the campaign's base config (``configs/multi30k_small.yaml``: optimizer,
schedule, label smoothing, dropouts, norms, subword type) with ``git archive``, and trains the same
short probe with them on this machine: each stage-1 setting in a small model (6 updates in float32 on
one thread, a greedy validation after 3 and 6), on a fixed synthetic corpus, from data preparation
to the checkpoint. The probe's digest covers the parameters and the optimizer state after the last
update and the validation BLEU, so it changes with anything training computes: the model, the loss,
the optimizer and its schedule, the data order, the dropout draws, the subword model (greedy
decoding only as far as so short a training's validation BLEU shows it). Equal digests on
one machine mean the commits train bit-identical models (a CPU rounds the same way each time; another
CPU could give other digests, the same for every commit). A version with uncommitted changes
(``<commit>+dirty``) is reported as such: only its commit can be probed.

    python scripts/check_code_versions.py configs/ablation/repro/campaign.yaml \\
        --family "Multi30k en->de, relative positions"

Prints a markdown table (commit, date, records naming it, digest); exit status 0 when every probed
commit gives the first one's digest, 1 when one differs, 2 on bad input (an unknown family, no record
naming a commit, a commit this checkout does not have, a probe that fails).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# the stage-1 settings (encoder self, decoder self, cross): configs/ablation/repro/multi30k-ende/{self,cross}.yaml
SETTINGS = {"1111": ("1111", "1111", "1111"), "self-0111": ("0111", "0111", "1111"),
            "self-0011": ("0011", "0011", "1111"), "self-0110": ("0110", "0110", "1111"),
            "cross-0111": ("1111", "1111", "0111"), "cross-1000": ("1111", "1111", "1000")}
PROBE_STEPS = 6
BASE = "configs/multi30k_small.yaml"  # what the campaign's studies build on (their ``base``)


def write_corpus(root: Path) -> None:
    """A fixed reverse-the-sequence corpus under ``root/reverse/``: 600 / 40 / 40 pairs."""
    rng = random.Random(1234)
    for split, n in (("train", 600), ("valid", 40), ("test", 40)):
        src, tgt = [], []
        for _ in range(n):
            words = [rng.choice("abcdefghijkl") * rng.randint(1, 3) for _ in range(rng.randint(3, 12))]
            src.append(" ".join(words))
            tgt.append(" ".join(reversed(words)))
        (root / "reverse").mkdir(parents=True, exist_ok=True)
        (root / "reverse" / f"{split}.src").write_text("\n".join(src) + "\n", encoding="utf-8")
        (root / "reverse" / f"{split}.tgt").write_text("\n".join(tgt) + "\n", encoding="utf-8")


def merged(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s keys set, section by section."""
    return {**base, **{k: merged(base.get(k) or {}, v) if isinstance(v, dict) else v for k, v in over.items()}}


def train_probe(work: Path, base: Path, name: str, precision: str = "32-true") -> dict[str, Any]:
    """Train the probe of setting ``name`` with the ``nmt`` package on ``sys.path`` and the base config
    ``base`` under ``work``; the parameters and optimizer state after the last update
    (``{name: tensor}``) and ``"val_bleu"``. Imports only what every campaign commit has
    (``from_dict``, ``ExperimentConfig``, ``fit``)."""
    import torch
    import yaml

    from nmt.config import from_dict
    from nmt.experiment import ExperimentConfig
    from nmt.train.fit import fit

    if not (work / "data").is_dir():
        write_corpus(work / "data")
    enc, dec, cross = SETTINGS[name]
    cfg = from_dict(ExperimentConfig, merged(yaml.safe_load(base.read_text(encoding="utf-8")), {
        "data": {"root": str(work / "data"), "corpus": "reverse", "src_lang": "src", "tgt_lang": "tgt",
                 "prepared_dir": str(work / "prepared"), "splits": {"train": "train", "valid": "valid", "test": "test"},
                 "subword": {"vocab_size": 24}, "batch": {"max_tokens": 400}},
        "model": {"d_model": 32, "n_heads": 2, "d_ff": 64, "encoder_layers": 2, "decoder_layers": 2,
                  "dropout": 0.2, "absolute_positions": "auto", "encoder_self": enc, "decoder_self": dec,
                  "cross": cross},
        "optim": {"warmup_steps": 4},
        "train": {"output_dir": str(work / "runs" / name), "max_steps": PROBE_STEPS, "max_time_minutes": None,
                  "val_every_steps": 3, "val_max_sentences": 0, "accelerator": "cpu", "devices": 1,
                  "precision": precision, "num_threads": 1, "heatmap_sentences": 0, "log_every_steps": 1},
    }))
    fit(cfg, enable_progress_bar=False)
    ckpt = torch.load(work / "runs" / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    if ckpt["global_step"] != PROBE_STEPS:
        raise RuntimeError(f"{name}: the probe stopped at update {ckpt['global_step']}, not {PROBE_STEPS}")
    state: dict[str, Any] = dict(ckpt["state_dict"])
    for i, opt in enumerate(ckpt["optimizer_states"]):
        for pid, slots in sorted(opt["state"].items()):
            state.update({f"opt{i}.{pid}.{k}": v for k, v in slots.items() if torch.is_tensor(v)})
    state["val_bleu"] = ckpt["nmt"]["val_bleu"]
    return state


def digest(state: dict[str, Any]) -> str:
    """The first 16 hex digits of a SHA-256 over a probe's tensors (bytes, by name) and validation BLEU."""
    h = hashlib.sha256()
    for key in sorted(k for k in state if k != "val_bleu"):
        h.update(key.encode())
        h.update(state[key].detach().contiguous().cpu().numpy().tobytes())
    h.update(repr(state["val_bleu"]).encode())
    return h.hexdigest()[:16]


def probe(work: Path, base: Path, settings: list[str]) -> dict[str, str]:
    """The digests of the float32 probes of ``settings`` (``train_probe``)."""
    return {name: digest(train_probe(work, base, name)) for name in settings}


def recorded_versions(campaign_file: str, family: str) -> dict[str, list[str]]:
    """``{code version: ["<study>/<label>/seed<k>", ...]}`` over the family's committed records."""
    from nmt.ablate.campaign import load_campaign
    from nmt.ablate.report import collect_records

    out: dict[str, list[str]] = {}
    for study in load_campaign(campaign_file).family(family).values():
        for rec in collect_records(study):
            for version in rec.code_versions or ["not recorded"]:
                out.setdefault(version, []).append(f"{study.name}/{rec.label}/seed{rec.seed}")
    return out


def probe_package(src: Path, settings: tuple[str, ...] = tuple(SETTINGS)) -> dict[str, str]:
    """The probe's digests with the ``nmt`` package and the base config under ``src`` (``src/nmt/``,
    ``src/configs/multi30k_small.yaml``), in a child process."""
    with tempfile.TemporaryDirectory(prefix="code-version-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        child = subprocess.run([sys.executable, __file__, "--probe", str(Path(tmp) / "work"), str(src / BASE),
                                *settings], env=env, capture_output=True, text=True, cwd=tmp)
        if child.returncode != 0:
            raise RuntimeError(f"probe of {src} failed:\n{child.stderr[-3000:]}")
        return json.loads(child.stdout.strip().splitlines()[-1])


def git(*args: str) -> bytes:
    """``git args...`` in this checkout; its output, or a RuntimeError with git's message."""
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {' '.join(out.stderr.decode(errors='replace').split())}")
    return out.stdout


def probe_commit(commit: str) -> dict[str, str]:
    """The probe's digests with ``commit``'s ``nmt/`` package."""
    with tempfile.TemporaryDirectory(prefix="code-version-src-") as src:
        subprocess.run(["tar", "-x", "-C", src], input=git("archive", commit, "nmt", BASE), check=True)
        return probe_package(Path(src))


def commit_date(commit: str) -> str:
    """``commit``'s date to the minute (``YYYY-MM-DD HH:MM``)."""
    return git("log", "-1", "--format=%ci", commit).decode().strip()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("campaign", nargs="?", help="campaign YAML")
    ap.add_argument("--family", help="family name, as in the campaign file")
    ap.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)  # child: WORK BASE SETTING...: probe the nmt on sys.path
    args = ap.parse_args(argv)
    if args.probe is not None:
        print(json.dumps(probe(Path(args.probe[0]), Path(args.probe[1]), args.probe[2:] or list(SETTINGS))))
        return 0
    from nmt.config import ConfigError

    if not args.campaign or not args.family:
        ap.error("a campaign file and --family are required")
    try:
        versions = recorded_versions(args.campaign, args.family)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    named = {v.removesuffix("+dirty") for v in versions if v != "not recorded"}
    if not named:
        print(f"error: no committed record of family {args.family!r} names a commit", file=sys.stderr)
        return 2
    try:
        dates = {c: commit_date(c) for c in named}
        commits = sorted(dates, key=dates.__getitem__)
        digests = {}
        for commit in commits:
            digests[commit] = probe_commit(commit)
            print(f"probed {commit[:10]}", file=sys.stderr)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    first = digests[commits[0]]
    print(f"| commit | date | records naming it | probe digest ({', '.join(SETTINGS)}) |\n|---|---|---|---|")
    for commit in commits:
        runs = {r for v, rs in versions.items() if v.removesuffix("+dirty") == commit for r in rs}
        dirty = f"{commit}+dirty" in versions
        same = "the same as the first" if digests[commit] == first else " ".join(digests[commit].values())
        print(f"| {commit[:10]}{' (+ uncommitted changes)' if dirty else ''} | {dates[commit]} | "
              f"{len(runs)} | {same} |")
    print(f"\nfirst commit's digests: {' '.join(first.values())}")
    if "not recorded" in versions:
        print(f"runs without a recorded code version: {', '.join(versions['not recorded'])}")
    differ = [c for c in commits if digests[c] != first]
    print(f"{len(commits)} commits probed: " + (f"{len(differ)} train other models than the first"
                                                  if differ else "all train bit-identical models"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
