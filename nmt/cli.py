"""The ``nmt`` command line. Thin: parses arguments, then calls library functions.

Config-driven commands (prepare, fit, validate, ablate) take ``--config FILE`` plus any number of
``--section.key value`` overrides, validated like the YAML itself. We use our own typed
dataclass configs rather than LightningCLI: one config tree serves every command (prepare,
fit, translate, ablate), checkpoints store it as plain data (``weights_only`` loading), and errors
name the YAML key. Lightning's Trainer flags are the ``train:`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any, Sequence

from nmt.config import ConfigError, describe, parse_override
from nmt.extras import MissingExtra, require_command
from nmt.lock import LockHeld
from nmt.runtime import tune_allocator

COMMANDS = ("prepare", "fit", "validate", "test", "translate", "score", "average", "select", "export", "ablate",
            "analyze")


NO_PACK_HELP = ("keep the linear layers' plain, separate weights (default: on CPUs with AVX-512, self-attention "
                "projections merged and pre-packed for oneDNN; elsewhere plain; nmt.model.packed.default_pack)")
PACK_HELP = "pre-pack the linear layers for oneDNN even where the CPU's default would not (an AVX2-only CPU)"


def _pack(args: argparse.Namespace) -> bool | None:
    """--no_pack: False, --pack: True, neither: None (the CPU's default, nmt.model.packed.default_pack)."""
    return False if args.no_pack else True if args.pack else None


QUANTIZE_HELP = "int8: run the linear layers as dynamic int8 (per-channel weight scales; nmt.model.quantize)"


def _int_at_least(low: int):
    """An argparse ``type``: an integer >= ``low``; anything else exits 2 naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _config_epilog() -> str:
    from nmt.experiment import ExperimentConfig

    rows = describe(ExperimentConfig)
    width = max(len(k) for k, _, _ in rows)
    lines = ["config keys (YAML sections, or --section.key VALUE on the command line):"]
    for key, typ, help_ in rows:
        lines.append(f"  {key:<{width}}  {help_}  [{typ}]")
    return "\n".join(lines)


def _split_overrides(extra: list[str], parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """``--a.b VALUE`` / ``--a.b=VALUE`` pairs -> [("a.b", "VALUE")], still text: the command reads each
    value by the type of the field it sets (``_typed_overrides``)."""
    out, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg:
            parser.error(f"unrecognized argument: {arg}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                parser.error(f"{arg} needs a value")
            value = extra[i + 1]
            i += 1
        out.append((key, value))
        i += 1
    return out


def _config_parser(sub, name: str, help_: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help=help_, description=help_, epilog=_config_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", help="experiment YAML (configs/*.yaml)")
    return p


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    """One option per DecodeConfig field (--beam, --alpha, ...), defaulting to the checkpoint's config."""
    from nmt.config import describe as _describe
    from nmt.decode.config import DecodeConfig

    for key, typ, help_ in _describe(DecodeConfig):
        p.add_argument(f"--{key}", type=_typed(DecodeConfig, key), default=None, help=f"{help_} [{typ}]")


def _typed(cls: type, key: str):
    """An argparse ``type``: the text read as field ``key`` of ``cls`` (``--beam 1000`` is 1000)."""

    def parse(text: str) -> Any:
        return parse_override(cls, key, text)

    return parse


def _typed_overrides(cmd: str, overrides: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """Each ``--key VALUE`` read by the type of the config field it sets."""
    if cmd == "ablate":
        from nmt.ablate.study import parse_study_override

        return [(k, parse_study_override(k, v)) for k, v in overrides]
    from nmt.experiment import ExperimentConfig

    return [(k, parse_override(ExperimentConfig, k, v)) for k, v in overrides]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nmt", description="factor-nmt: train, translate, score, ablate.")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")

    _config_parser(sub, "prepare", "validate corpora, train subwords, binarize (cached)")
    p = _config_parser(sub, "fit", "train a model")
    p.add_argument("--ckpt_path", help="resume: 'last' (error if absent), 'auto' (if present) or a path")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a train.output_dir that is not empty, deleting the previous run's "
                        "checkpoints/, tb/, subword/ and config.yaml first (default: refuse, so that two runs never mix)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar (logs only)")
    p = _config_parser(sub, "validate", "validation loss and BLEU of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.ckpt)")

    p = sub.add_parser("test", help="translate a split of the checkpoint's corpus and score it")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.ckpt)")
    p.add_argument("--split", default="test", help="split to translate (default: test)")
    p.add_argument("--output", help="write hypotheses here (default: next to the checkpoint)")
    p.add_argument("--max_tokens", type=_int_at_least(1), default=4000, help="source tokens per decoding batch")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    packing = p.add_mutually_exclusive_group()
    packing.add_argument("--no_pack", action="store_true", help=NO_PACK_HELP)
    packing.add_argument("--pack", action="store_true", help=PACK_HELP)
    p.add_argument("--quantize", choices=["int8"], help=QUANTIZE_HELP)
    _add_decode_options(p)

    p = sub.add_parser("translate", help="translate text (stdin or --input) with a checkpoint")
    p.add_argument("--checkpoint", required=True, nargs="+", help="checkpoint(s); several = ensemble")
    p.add_argument("--input", "-i", help="source file (default: stdin)")
    p.add_argument("--output", "-o", help="output file (default: stdout)")
    p.add_argument("--max_tokens", type=_int_at_least(1), default=4000, help="source tokens per decoding batch")
    p.add_argument("--max_input_len", type=_int_at_least(0), default=0,
                   help="truncate longer inputs (tokens; 0: model limit)")
    p.add_argument("--scores", action="store_true",
                   help="write all n-best lines as 'H-<input index><TAB>score<TAB>hypothesis' (fairseq's layout)")
    p.add_argument("--chunk_lines", type=_int_at_least(1), default=1000,
                   help="input lines translated and written together (output is flushed after each chunk)")
    packing = p.add_mutually_exclusive_group()
    packing.add_argument("--no_pack", action="store_true", help=NO_PACK_HELP)
    packing.add_argument("--pack", action="store_true", help=PACK_HELP)
    p.add_argument("--quantize", choices=["int8"], help=QUANTIZE_HELP)
    _add_decode_options(p)

    p = sub.add_parser("score", help="score hypotheses with sacrebleu (BLEU, chrF, TER)")
    p.add_argument("--hyp", required=True, help="hypothesis file (detokenised)")
    p.add_argument("--ref", nargs="+", help="reference file(s)")
    p.add_argument("--testset", help="a sacrebleu test set name (wmt14, wmt14/full, ...) instead of --ref")
    p.add_argument("--langpair", help="language pair of --testset, e.g. en-de")
    p.add_argument("--metrics", nargs="+", default=["bleu", "chrf"], choices=["bleu", "chrf", "ter"])
    p.add_argument("--json", action="store_true", help="print one JSON line")

    p = sub.add_parser("average", help="average the parameters of the last or best N checkpoints")
    p.add_argument("--dir", help="checkpoint directory (run_dir/checkpoints)")
    p.add_argument("--checkpoints", nargs="+", help="explicit checkpoint files instead of --dir")
    p.add_argument("--last", type=_int_at_least(1), help="average the N latest (by step)")
    p.add_argument("--best", type=_int_at_least(1), help="average the N best (by validation BLEU)")
    p.add_argument("--output", "-o", required=True, help="averaged checkpoint path")

    p = sub.add_parser("select", help="choose the final model on the validation set: best-N average and length penalty")
    p.add_argument("--dir", required=True, help="checkpoint directory (run_dir/checkpoints)")
    p.add_argument("--output", "-o", required=True, help="the chosen model (.ckpt; the choice goes to .json beside it)")
    p.add_argument("--alphas", type=float, nargs="+", default=None, help="length penalties to try (default 0.6 0.8 1.0 1.2 1.5)")
    p.add_argument("--alpha_max", type=float, default=3.0,
                   help="when the best alpha is the largest tried, try 0.5 more up to this (default 3.0)")
    p.add_argument("--max_n", type=_int_at_least(1), help="largest N to try (default: every kept checkpoint)")
    p.add_argument("--split", default="valid", help="split to choose on (default: valid)")
    p.add_argument("--max_tokens", type=_int_at_least(1), default=4000, help="source tokens per decoding batch")

    p = sub.add_parser("export", help="write a checkpoint as a CTranslate2 model directory (pip install '.[export]')")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.ckpt)")
    p.add_argument("--format", choices=["ctranslate2"], default="ctranslate2", help="target engine")
    p.add_argument("--output", "-o", required=True, help="model directory to write")
    p.add_argument("--quantization", choices=["int8", "int8_float32", "int16", "float16"],
                   help="store the weights quantized (default: float32)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty output directory")

    p = _config_parser(sub, "ablate", "run an ablation study or campaign (configs/ablation/)")
    p.add_argument("--only", nargs="+", help="run only these settings (by label; a study file only)")
    p.add_argument("--report_only", action="store_true", help="do not train; rebuild table and plot")
    p.add_argument("--status", action="store_true",
                   help="print runs done, running, interrupted, left, time left; each family's seed count; finished runs")
    p.add_argument("--verdicts", action="store_true",
                   help="campaign: decide the claims from the finished runs (pending until every planned seed is in)")

    p = sub.add_parser("analyze", help="which attention terms a trained model uses: statistics, test-time removal")
    p.add_argument("--checkpoint", required=True, help="checkpoint (.ckpt)")
    p.add_argument("--split", default="valid", help="split to analyze (default: valid)")
    p.add_argument("--output", help="report folder (default: beside the checkpoint, .ckpt replaced by .analyze-<split>/)")
    p.add_argument("--max_sentences", type=_int_at_least(0), default=500, help="first N sentences of the split (0: all)")
    p.add_argument("--heatmap_sentences", type=_int_at_least(0), default=2, help="sentences with per-term heatmaps (0: none)")
    p.add_argument("--no_layers", action="store_true", help="remove terms per role only, not layer by layer")
    p.add_argument("--no_ablation", action="store_true", help="statistics and heatmaps only, no decoding")
    p.add_argument("--max_tokens", type=_int_at_least(1), default=4000, help="source tokens per batch")
    packing = p.add_mutually_exclusive_group()
    packing.add_argument("--no_pack", action="store_true", help=NO_PACK_HELP)
    packing.add_argument("--pack", action="store_true", help=PACK_HELP)
    _add_decode_options(p)
    for p in sub.choices.values():  # every command may read a model that uses a mechanism of the user's own
        p.add_argument("--plugins", nargs="+", default=[], metavar="FILE_OR_MODULE",
                       help="load mechanisms of your own (.py files or modules, docs/extending.md) before anything else;"
                            " needed to read a checkpoint whose model names them")
    return parser


def _decode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from nmt.decode.config import DecodeConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(DecodeConfig) if getattr(args, f.name) is not None}


def _run(args: argparse.Namespace, raw_overrides: list[tuple[str, str]]) -> int:
    cmd = args.command
    require_command(cmd)  # a missing optional group (e.g. [train] for nmt fit): one line naming it, exit 2
    if args.plugins:
        from nmt.modules.plugins import load_plugins

        load_plugins(args.plugins)
    if cmd in ("prepare", "fit", "validate", "ablate"):
        overrides = _typed_overrides(cmd, raw_overrides)
        if cmd == "ablate":
            from nmt.ablate.command import ablate_command

            return ablate_command(args.config, overrides, only=args.only, report_only=args.report_only,
                                  status=args.status, verdicts=args.verdicts)
        from nmt.experiment import load_config

        if args.config is None and not overrides:
            raise ConfigError(f"nmt {cmd}: give --config FILE (see configs/)")
        cfg = load_config(args.config, overrides)
        if cmd == "prepare":
            from nmt.data.prepare import prepare

            prepare(cfg.data, progress=True)
            return 0
        if cmd == "fit":
            from nmt.train.fit import fit

            fit(cfg, args.ckpt_path, overwrite=args.overwrite, enable_progress_bar=not args.no_progress)
            return 0
        from nmt.train.fit import validate

        validate(cfg, args.checkpoint)
        return 0
    if cmd == "test":
        from nmt.inference import test_split

        result = test_split(
            args.checkpoint, args.split, _decode_overrides(args), args.output, args.max_tokens, _pack(args),
            quantize=args.quantize,
        )
        print(json.dumps(result) if args.json else "\n".join(result["lines"]))
        return 0
    if cmd == "translate":
        from nmt.inference import translate_files

        translate_files(
            args.checkpoint, args.input, args.output, _decode_overrides(args), args.max_tokens,
            args.max_input_len, args.scores, _pack(args), chunk_lines=args.chunk_lines, quantize=args.quantize,
        )
        return 0
    if cmd == "score":
        from nmt.eval.score import format_results, read_lines, score, score_files, testset_refs

        if bool(args.ref) == bool(args.testset):
            raise ValueError("nmt score: give either --ref FILE... or --testset NAME --langpair SRC-TGT")
        if args.testset:
            if not args.langpair:
                raise ValueError("nmt score: --testset needs --langpair (e.g. en-de)")
            results = score(read_lines(args.hyp), testset_refs(args.testset, args.langpair), args.metrics)
        else:
            results = score_files(args.hyp, args.ref, args.metrics)
        print(format_results(results, as_json=args.json))
        return 0
    if cmd == "average":
        from nmt.train.average import average_command

        average_command(args.dir, args.checkpoints, args.last, args.best, args.output)
        return 0
    if cmd == "export":
        from nmt.export.ctranslate2 import export_ctranslate2

        record = export_ctranslate2(args.checkpoint, args.output, args.quantization, args.force)
        print(f"exported {args.checkpoint} ({record['quantization']}) -> {args.output}")
        return 0
    if cmd == "select":
        from nmt.selection.select import DEFAULT_ALPHAS, format_record, select_final

        record = select_final(args.dir, args.output, args.alphas or DEFAULT_ALPHAS, args.max_n, args.split, args.max_tokens,
                              alpha_max=args.alpha_max)
        print(format_record(record))
        return 0
    if cmd == "analyze":
        from nmt.analyze.command import analyze

        result = analyze(
            args.checkpoint, args.split, args.output, _decode_overrides(args), max_sentences=args.max_sentences,
            heatmap_sentences=args.heatmap_sentences, ablation=not args.no_ablation, per_layer=not args.no_layers,
            max_tokens=args.max_tokens, pack=_pack(args),
        )
        print("\n".join(result["summary"]))
        return 0
    raise AssertionError(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``nmt`` command; returns the exit status (2: bad input, one line on stderr; 130: Ctrl-C;
    141: the reader of the output went away, as for a Unix tool killed by SIGPIPE)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the libraries load: no traceback
        return 130
    except BrokenPipeError:  # `nmt translate ... | head -1`: stop quietly
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = _split_overrides(extra, parser)
    if overrides and args.command not in ("prepare", "fit", "validate", "ablate"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(__name__).debug("allocator tuned for reuse: %s", tune_allocator())  # nmt.runtime
    errors: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, ValueError, OSError, MissingExtra,
                                               LockHeld)
    try:
        return _run(args, overrides)
    except BrokenPipeError:
        raise  # main: quiet
    except errors as e:  # bad input: one clear line, non-zero exit (--verbose shows the traceback)
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
