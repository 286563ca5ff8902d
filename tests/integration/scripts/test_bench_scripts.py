"""Smoke tests of the benchmark scripts (bench_train, bench_decode, bench_engines, bench_kernels, ...) on a tiny
model over the peers' workload."""

from __future__ import annotations

import argparse
import json

import bench_common as C
import bench_decode
import bench_engines
import bench_kernels
import bench_train
import pytest
import sitting_table
import torch

from nmt.config import ConfigError
from nmt.model.packed import packing_available

TINY = ["--d_model", "32", "--d_ff", "64", "--heads", "2", "--layers", "1", "--threads", "1"]
needs_workload = pytest.mark.skipif(
    not ((C.PEERS_DIR / "spm8k.model").is_file() and (C.DATA_DIR / "train.en").is_file()),
    reason=f"peer workload not found ({C.PEERS_DIR}, {C.DATA_DIR}); set NMT_SHARED / NMT_SHARED_DATA",
)


def one_json_line(capsys) -> dict:
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])


class FakeVocab:
    pad_id, bos_id, eos_id = 9, 1, 2


def test_pad_batch_follows_the_workload_conventions():
    b = bench_train.pad_batch([[5, 6, 7], [8]], [[3], [4, 5]], FakeVocab())
    assert b.src.tolist() == [[5, 6, 7, 2], [8, 2, 9, 9]]  # ids + eos, right padding
    assert b.tgt_in.tolist() == [[1, 3, 9], [1, 4, 5]]  # bos + ids
    assert b.tgt_out.tolist() == [[3, 2, 9], [4, 5, 2]]  # ids + eos
    assert b.src_padding_mask.tolist() == [[False] * 4, [False, False, True, True]]
    assert b.tgt_padding_mask.tolist() == [[False, False, True], [False] * 3]
    assert (b.n_src_tokens, b.n_tgt_tokens) == (6, 5)


@needs_workload
def test_train_fixed_batches(capsys):
    record = bench_train.main(TINY + ["--warmup", "1", "--steps", "1", "--matmul_peak", "100"])
    assert one_json_line(capsys) == record
    spec = json.loads((C.PEERS_DIR / "train_batches.json").read_text())["batches"][1]
    assert (record["tgt_tokens"], record["src_tokens"]) == (spec["tgt_tokens"], spec["src_tokens"])
    assert record["timed_steps"] == 1 and record["tgt_tok_per_s"] > 0 and 0 < record["mfu"] < 1
    assert record["spec"] == "1000" and record["norm"] == "post" and record["threads"] == 1


@needs_workload
def test_train_rejects_more_steps_than_batches_and_bad_specs():
    with pytest.raises(ValueError, match="exceeds the 25 batches"):
        bench_train.main(TINY + ["--warmup", "5", "--steps", "21"])
    with pytest.raises(ConfigError, match="encoder_self"):
        bench_train.main(TINY + ["--spec", "10x0", "--warmup", "0", "--steps", "1"])


@needs_workload
def test_train_flops_are_three_forward_passes_over_real_lengths():
    vocab = C.load_vocab(C.PEERS_DIR)
    model = C.build_model(_namespace(TINY), vocab)
    batch = bench_train.pad_batch([[5, 6, 7], [8]], [[3], [4, 5]], vocab)
    expected = 3 * (model.flops(4, 2)["total"] + model.flops(2, 3)["total"])
    assert bench_train.Trainer(model, compile_model=False).flops(batch) == expected


@needs_workload
def test_train_bf16_autocasts_the_forward_and_keeps_float32_parameters(capsys):
    import copy

    vocab = C.load_vocab(C.PEERS_DIR)
    model = C.build_model(_namespace(TINY), vocab)
    batch = bench_train.pad_batch([[5, 6, 7], [8]], [[3], [4, 5]], vocab)
    twin, again = copy.deepcopy(model), copy.deepcopy(model)
    losses = []
    for m, bf16 in ((model, False), (again, False), (twin, True)):
        torch.manual_seed(0)  # the same dropout draws
        losses.append(bench_train.Trainer(m, compile_model=False, bf16=bf16).step(batch))
    fp32, same, bf16 = losses
    assert fp32 == same
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.05 * fp32  # rounded to bfloat16, not another loss
    assert all(p.dtype == torch.float32 for p in twin.parameters())
    record = bench_train.main(TINY + ["--warmup", "0", "--steps", "1", "--bf16"])
    assert one_json_line(capsys) == record and record["bf16"] is True


@needs_workload
def test_train_epoch_mode(capsys, tmp_path):
    record = bench_train.main(TINY + ["--epoch", "--max_train_pairs", "600", "--max_steps", "2", "--warmup", "1",
                                      "--prepared_dir", str(tmp_path)])
    assert one_json_line(capsys)["measurement"] == "train_nmt_epoch"
    assert record["timed_steps"] == 1 and record["tgt_tokens"] > 0 and 0 <= record["tgt_padding_share"] < 1


@needs_workload
@pytest.mark.parametrize("beam", [1, 2])
def test_decode_forces_32_tokens(capsys, beam):
    record = bench_decode.main(TINY + ["--beam", str(beam), "--batches", "1", "--matmul_peak", "100"])
    assert one_json_line(capsys) == record
    assert record["n_sent"] == 32 and record["new_tokens"] == 32 * 32
    assert record["gen_tok_per_s"] > 0 and record["mfu"] > 0


@needs_workload
def test_decode_in_int8(capsys):
    record = bench_decode.main(TINY + ["--beam", "2", "--batches", "1", "--quantize", "int8"])
    assert one_json_line(capsys) == record
    assert record["quantize"] == "int8" and record["int8_linears"] > 0 and record["packed_linears"] == 0
    assert record["params"] == C.build_model(_namespace(TINY), C.load_vocab(C.PEERS_DIR)).num_parameters()


@needs_workload
def test_engines_compares_two_int8_engines_on_the_same_batches(capsys):
    engines = [e for e in ("x86", "onednn") if e in torch.backends.quantized.supported_engines]
    before = torch.backends.quantized.engine
    args = TINY + ["--beam", "2", "--batches", "2", "--rounds", "1", "--a", engines[0], "--b", engines[-1]]
    record = bench_engines.main(args)
    assert one_json_line(capsys) == record
    assert record["sentences"] == 64 and record["a_sent_per_s"] > 0 and record["b_sent_per_s"] > 0
    assert 0 <= record["identical_sentences"] <= 1
    if len(engines) == 1:  # one engine against itself: the same kernels, the same translations
        assert record["identical_sentences"] == 1
    torch.backends.quantized.engine = before


@needs_workload
def test_decode_profile_lists_operators_by_input_shape(capsys):
    record = bench_decode.main(TINY + ["--beam", "1", "--batches", "1", "--quantize", "int8", "--profile",
                                       "--profile_shapes", "--profile_rows", "5"])
    out, err = capsys.readouterr()
    assert json.loads(out) == record and record["profiled"]
    assert "Input Shapes" in err and "quantized::linear" in err and "operator calls made from Python" in err


@needs_workload
def test_decode_flops_scale_the_decoder_with_the_beam():
    vocab = C.load_vocab(C.PEERS_DIR)
    model = C.build_model(_namespace(TINY), vocab)
    f = model.flops(7, 32)
    encoder = f["encoder_self"] + sum(layer.ffn.flops(7) for layer in model.encoder)
    assert bench_decode.decode_flops(model, [7], 1) == f["total"]
    assert bench_decode.decode_flops(model, [7], 5) == encoder + 5 * (f["total"] - encoder)


def _namespace(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    C.add_common_args(ap)
    return ap.parse_args(argv)


@needs_workload
def test_decode_breakdown_times_the_parts_and_restores_the_model(capsys):
    record = bench_decode.main(TINY + ["--beam", "2", "--batches", "1", "--breakdown"])
    parts = record["breakdown_s"]
    assert set(parts) == {"encode", "model.step", "reorder_state", "model.step > output projection",
                          "model.step > decoder self-mixing", "model.step > cross-mixing",
                          "model.step > feed-forward", "search and the rest"}
    assert 0 < parts["model.step > feed-forward"] < parts["model.step"] < record["seconds"]
    assert parts["encode"] > 0 and parts["reorder_state"] >= 0  # a reorder only records rows (TimeCache)


def test_timed_calls_restores_what_it_shadowed():
    class Box:
        def f(self, x):
            return x + 1

    box = Box()
    with C.timed_calls([("f", box, "f")]) as totals:
        assert box.f(1) == 2
    assert totals["f"] > 0 and "f" not in vars(box)
    with pytest.raises(ValueError, match="f is already shadowed on Box"):
        with C.timed_calls([("f", box, "f"), ("again", box, "f")]):
            pass
    assert "f" not in vars(box)  # the first shadow was undone


def test_kernels_micro_benchmarks_print_their_records(capsys):
    engine = torch.backends.quantized.engine
    records = bench_kernels.main(["--only", "attention", "--only", "gemm", "--only", "search", "--only", "int8_call",
                                  "--calls", "1", "--repeats", "1", "--threads", "1"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{**r, "threads": 1, "torch": lines[0]["torch"]} for r in records]
    attention = [r for r in records if r["group"] == "attention"]
    assert len(attention) == 8 and all(r["sdpa_ms"] > 0 and r["explicit_ms"] > 0 for r in attention)
    assert {r["rows"] for r in records if r["group"] == "gemm"} == {32, 160, 1056, 2048}
    assert "int8 x86" in {r["kernel"] for r in records if r["group"] == "gemm"}
    search = [r for r in records if r["group"] == "search"]
    assert len(search) == 2 and all(v > 0 for r in search for k, v in r.items() if k.endswith("_ms"))
    calls = [r for r in records if r["group"] == "int8_call"]
    assert calls and all(v > 0 for r in calls for k, v in r.items() if k.endswith("_us"))
    assert torch.backends.quantized.engine == engine  # the engine the int8 rows switched is restored


@pytest.mark.skipif(not packing_available(), reason="no oneDNN linear in this build")
def test_onednn_training_linear_has_the_gradients_of_f_linear():
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=g, requires_grad=True) for shape in ((7, 5), (3, 5), (3,)))
    grad = torch.randn(7, 3, generator=g)
    bench_kernels.OneDNNLinear.apply(x, w, b).backward(grad)
    mine = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    torch.nn.functional.linear(x, w, b).backward(grad)
    for a, ref in zip(mine, (x.grad, w.grad, b.grad)):
        torch.testing.assert_close(a, ref)


def test_sitting_table_takes_medians_and_ratios_of_medians(tmp_path, capsys):
    lines = [
        {"name": "train_hf", "rep": 1, "result": {"tgt_tok_per_s": 400.0, "sec_per_step": 9.0, "peak_rss_mib": 100.0}},
        {"name": "train_hf", "rep": 2, "result": {"tgt_tok_per_s": 500.0, "sec_per_step": 8.0, "peak_rss_mib": 100.0}},
        {"name": "nmt_train", "rep": 1, "result": {"tgt_tok_per_s": 540.0, "sec_per_step": 7.0, "peak_rss_mib": 90.0}},
        {"name": "nmt_train", "rep": 2, "result": None},  # a failed run is skipped
        {"name": "variant_train:1000", "rep": 1, "result": {"sec_per_step": 2.0, "tgt_tok_per_s": 10.0, "params": 5}},
        {"name": "variant_b5:1000", "rep": 1, "result": {"sent_per_s": 4.0}},
        {"name": "variant_train:1111", "rep": 1, "result": {"sec_per_step": 2.5, "tgt_tok_per_s": 8.0, "params": 6}},
        {"name": "variant_b5:1111", "rep": 1, "result": {"sent_per_s": 3.0}},
        {"name": "ct2_int8_b5", "rep": 1, "result": {"sent_per_s": 10.0, "peak_rss_mib": 200.0}},
        {"name": "nmt_b5_int8", "rep": 1, "result": {"sent_per_s": 12.0, "peak_rss_mib": 300.0}},
        {"name": "nmt_b5_int8", "rep": 2, "result": {"sent_per_s": 8.0, "peak_rss_mib": 320.0}},
    ]
    raw = tmp_path / "sitting.jsonl"
    raw.write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = sitting_table.main([str(raw)])
    assert "| HF transformers | training | 2 | 450.0 (400.0-500.0) |" in text
    assert "| training target tok/s, ours / HF | **1.20x** | >= 1.0x |" in text
    assert "| peak RSS ours / HF: training | 0.90 | <= 1.0 |" in text
    assert "| `1111` | 2.50 | 1.25x | 8.0 | 3.00 | 0.75x | 6 |" in text
    assert "| ours (`1000`, `--quantize int8`) | beam 5 | 2 |  |  | 10.00 (8.00-12.00) | 310 (300-320) |" in text
    assert "| beam 5 sentences/s, ours int8 / CTranslate2 int8 | **1.00x** | >= 1.0x |" in text
    assert "| peak RSS MiB, beam 5: ours int8 / CTranslate2 int8 | 310 / 200 | reported |" in text
    with pytest.raises(SystemExit, match="missing.jsonl: no such file"):
        sitting_table.main([str(tmp_path / "missing.jsonl")])
    raw.write_text("not json\n")
    with pytest.raises(SystemExit, match="sitting.jsonl:1: not a JSON line"):
        sitting_table.main([str(raw)])


@needs_workload
def test_export_writes_the_benchmark_model_where_decode_ct2_reads_it(capsys, tmp_path):
    ct2 = pytest.importorskip("ctranslate2")
    import bench_export

    record = bench_export.main(TINY + ["--out", str(tmp_path)])
    assert one_json_line(capsys) == record
    for q in ("float32", "int8"):
        assert record["dirs"][q] == str(tmp_path / f"ct2_{q}")
        tr = ct2.Translator(record["dirs"][q], device="cpu", compute_type=q)
        out = tr.translate_batch([["▁a", "</s>"]], beam_size=1, min_decoding_length=4, max_decoding_length=4)
        assert len(out[0].hypotheses[0]) == 4


def test_deploy_translates_and_scores_an_exported_model(trained_tiny, reverse_root, tmp_path, capsys):
    pytest.importorskip("ctranslate2")
    import bench_deploy

    from nmt.cli import main as nmt_main

    assert nmt_main(["export", "--checkpoint", str(trained_tiny / "checkpoints" / "last.ckpt"), "-o", str(tmp_path / "m"),
                     "--quantization", "int8"]) == 0
    capsys.readouterr()
    src, ref = reverse_root / "copy" / "test.src", reverse_root / "copy" / "test.tgt"
    record = bench_deploy.main(["--model", str(tmp_path / "m"), "--compute_type", "int8", "--src", str(src),
                                "--ref", str(ref), "--out", str(tmp_path / "hyp"), "--batch", "16"])
    assert one_json_line(capsys) == record
    assert record["sentences"] == 100 and record["exported"] == "int8" and record["beam"] == 2  # the checkpoint's beam
    from nmt.eval.score import score_files

    assert len((tmp_path / "hyp").read_text(encoding="utf-8").splitlines()) == 100
    assert record["bleu"] == score_files(tmp_path / "hyp", ref, ["bleu"])[0].score > 50  # the written output, scored
    assert record["bleu_signature"].startswith("nrefs:1")
