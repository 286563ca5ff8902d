"""Our benchmark model exported to CTranslate2, for the peers' decoding script (``decode_ct2.py``).

Builds the randomly initialised model of ``bench_decode.py`` (same arguments, same seed, spm8k
vocabulary) and writes it with ``nmt.export.ctranslate2`` to ``OUT/ct2_float32`` and ``OUT/ct2_int8``,
the layout the peers' ``common.py`` reads from ``$PEERS_WORK``. The workload passes "</s>" itself, so
the export does not add it. Then, with the peers' virtual environment:

    python scripts/bench_export.py --out /tmp/ours-ct2
    (cd ../shared/bench/peers && PEERS_WORK=/tmp/ours-ct2 python decode_ct2.py --compute_type int8 --beam 5)

Prints one JSON line (stdout): the directories and the model's parameter count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as C  # noqa: E402

from nmt.export.ctranslate2 import build_spec  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--out", type=Path, required=True, help="directory for ct2_float32/ and ct2_int8/")
    args = ap.parse_args(argv)
    vocab = C.load_vocab(args.peers)
    model = C.build_model(args, vocab).eval()
    sp = vocab.src_sp
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    specials = {"unk_token": pieces[vocab.unk_id], "bos_token": pieces[vocab.bos_id], "eos_token": pieces[vocab.eos_id]}
    dirs = {}
    for quantization in ("float32", "int8"):
        spec = build_spec(model, pieces, pieces, specials, add_source_eos=False)
        spec.validate()
        spec.optimize(quantization=None if quantization == "float32" else quantization)
        out = args.out / f"ct2_{quantization}"
        out.mkdir(parents=True, exist_ok=True)
        spec.save(str(out))
        dirs[quantization] = str(out)
    record = {"measurement": "export_ct2", "dirs": dirs, **C.model_record(args, model)}
    C.emit(record)
    return record


if __name__ == "__main__":
    main()
