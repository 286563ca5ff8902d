"""Integration tests of training on synthetic data: checkpoints, exact resume, averaging, CLI end to end."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.train_toys import fit_recording

from nmt.checkpoint import Checkpoint, CheckpointError
from nmt.cli import main
from nmt.io import atomic_write
from nmt.train.average import average_checkpoints
from nmt.train.config import OptimConfig
from nmt.train.fit import fit, validate
from nmt.train.schedule import build_optimizer, lr_factor


def test_checkpoints_are_plain_and_carry_config_and_vocab(make_experiment):
    cfg = make_experiment("plain", train={"max_steps": 4, "val_every_steps": 2})
    fit(cfg, enable_progress_bar=False)
    ckpt_dir = cfg.train.output_dir + "/checkpoints"
    ckpt = torch.load(ckpt_dir + "/last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["nmt"]["config"]["model"]["d_model"] == 32
    assert ckpt["nmt"]["vocab"]["eos_id"] == 3
    assert isinstance(ckpt["nmt"]["val_bleu"], float)
    assert ckpt["global_step"] == 4
    # `nmt validate` on the same checkpoint reproduces the logged validation BLEU
    (metrics,) = validate(cfg, ckpt_dir + "/last.ckpt")
    assert metrics["val_bleu"] == pytest.approx(ckpt["nmt"]["val_bleu"], abs=1e-6)
    assert {"val/nll", "val/ppl", "val/chrf"} <= set(metrics)


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(make_experiment):
    """A run stopped at step 6 and resumed from last.ckpt continues exactly (weights, optimizer,
    schedule, data order mid-epoch, dropout RNG)."""
    sections = dict(model={"dropout": 0.1}, train={"max_steps": 12, "val_every_steps": 3})
    straight = fit_recording(make_experiment("straight", **sections))
    cfg_a = make_experiment("resumed", model={"dropout": 0.1}, train={"max_steps": 6, "val_every_steps": 3})
    first = fit_recording(cfg_a)
    cfg_b = make_experiment("resumed", **sections)
    second = fit_recording(cfg_b, "last")
    assert sorted(first) == list(range(1, 7)) and sorted(second) == list(range(7, 13))
    for step in range(7, 13):
        assert second[step] == pytest.approx(straight[step], rel=1e-5, abs=1e-6), step
    for step in range(1, 7):
        assert first[step] == pytest.approx(straight[step], rel=1e-5, abs=1e-6), step


def test_missing_resume_checkpoint_is_a_clear_error(make_experiment):
    cfg = make_experiment("nockpt")
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        fit(cfg, "last", enable_progress_bar=False)


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.ckpt"
    with atomic_write(path) as f:
        torch.save({"a": torch.ones(2)}, f)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), atomic_write(path) as f:
        torch.save({"a": Unpicklable()}, f)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["x.ckpt"]  # no temp file left behind


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        Checkpoint.load(tmp_path / "nothing.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a factor-nmt checkpoint"):
        Checkpoint.load(tmp_path / "foreign.ckpt")


def test_average_is_the_parameter_mean(tmp_path):
    for i, v in enumerate((1.0, 3.0)):
        Checkpoint({"w": torch.full((2,), v)}, {}, {}, {"src": b"spm"}, global_step=i).save(tmp_path / f"{i}.ckpt")
    avg = average_checkpoints([tmp_path / "0.ckpt", tmp_path / "1.ckpt"])
    assert torch.equal(avg.state_dict["w"], torch.full((2,), 2.0))
    assert avg.global_step == 1 and avg.subword == {"src": b"spm"} and avg.val_bleu is None


def test_lr_schedules():
    cfg = OptimConfig(lr=1.0, warmup_steps=4)
    assert [lr_factor(s, cfg, None) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(15, cfg, None) == pytest.approx(math.sqrt(4 / 16))
    cos = OptimConfig(lr=1.0, warmup_steps=0, schedule="cosine", min_lr=0.1)
    assert lr_factor(99, cos, 100) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="max_steps"):
        lr_factor(5, cos, None)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizer_is_fused_unless_asked_otherwise(name):
    model = torch.nn.Linear(3, 2)
    fused = build_optimizer(model, OptimConfig(optimizer=name), None)["optimizer"]
    plain = build_optimizer(model, OptimConfig(optimizer=name, fused=False), None)["optimizer"]
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    a, b = [torch.nn.Linear(3, 2) for _ in range(2)]
    b.load_state_dict(a.state_dict())
    for m, fused_flag in ((a, True), (b, False)):
        opt = build_optimizer(m, OptimConfig(optimizer=name, warmup_steps=0, weight_decay=0.1, fused=fused_flag), None)
        for _ in range(3):
            m.weight.grad, m.bias.grad = torch.full_like(m.weight, 0.5), torch.full_like(m.bias, -0.25)
            opt["optimizer"].step()
    torch.testing.assert_close(a.weight, b.weight)  # the same update either way


def test_cli_fit_average_translate_score_end_to_end(make_experiment, reverse_root, tmp_path, capsys):
    cfg = make_experiment("cli", train={"max_steps": 6, "val_every_steps": 2, "save_top_k": 3})
    fit(cfg, enable_progress_bar=False)
    run = tmp_path / "cli"
    assert main(["average", "--dir", str(run / "checkpoints"), "--best", "2", "-o", str(run / "avg.ckpt")]) == 0
    src = reverse_root / "reverse" / "test.src"
    lines = src.read_text(encoding="utf-8").splitlines()[:7] + ["", "a b"]
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    hyp = tmp_path / "hyp.txt"
    assert main(["translate", "--checkpoint", str(run / "avg.ckpt"), "--beam", "3", "-i", str(inp), "-o", str(hyp)]) == 0
    out = hyp.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(out) == len(lines) and out[7] == ""  # order kept, empty line stays empty
    plain = tmp_path / "plain.txt"  # plain weights instead of oneDNN-packed ones: the same output
    args = ["--beam", "3", "-i", str(inp), "-o", str(plain), "--no_pack"]
    assert main(["translate", "--checkpoint", str(run / "avg.ckpt"), *args]) == 0
    assert plain.read_text(encoding="utf-8") == hyp.read_text(encoding="utf-8")
    ref = tmp_path / "ref.txt"
    ref.write_text(hyp.read_text(encoding="utf-8"), encoding="utf-8")
    capsys.readouterr()
    assert main(["score", "--hyp", str(hyp), "--ref", str(ref), "--metrics", "bleu", "chrf", "ter"]) == 0
    printed = capsys.readouterr().out
    assert "BLEU" in printed and "signature: nrefs:1" in printed and "TER" in printed
    assert main(["test", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--json", "--beam", "1"]) == 0


def test_cli_errors_exit_2_with_a_clear_line(tmp_path, capsys):
    assert main(["translate", "--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  encoder_self: '0000'\n", encoding="utf-8")
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "model.encoder_self[0]" in err and "0000" in err and str(cfg) in err
    cfg.write_text("trian:\n  max_steps: 3\n", encoding="utf-8")
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "unknown config key 'trian'" in capsys.readouterr().err
    assert main(["score", "--hyp", str(tmp_path / "h"), "--ref", str(tmp_path / "r")]) == 2


@pytest.mark.parametrize("command", ["prepare", "fit"])
@pytest.mark.parametrize("key,text,value,message", [
    ("model.encoder_self", "deformable:k=-1", "deformable:k=-1",
     "model.encoder_self[0] = 'deformable:k=-1': deformable: option k=-1 must be >= 1"),
    ("model.encoder_self", "dynamic:k=4", "dynamic:k=4",
     "model.encoder_self[0] = 'dynamic:k=4': dynamic: option k=4 must be odd"),
    ("model.cross", "[1000, nosuch]", ["1000", "nosuch"], "model.cross[1] = 'nosuch': unknown mechanism 'nosuch'"),
    ("model.decoder_self", "1000:offset=aligned", "1000:offset=aligned", "model.decoder_self[0] = '1000:offset=aligned'"),
])
def test_spec_errors_stop_the_cli_before_anything_is_written(
    make_experiment, tmp_path, capsys, command, key, text, value, message
):
    import yaml

    from nmt.config import to_dict

    cfg = to_dict(make_experiment("run", model={"decoder_layers": 2}))
    cfg["data"]["prepared_dir"] = str(tmp_path / "prepared")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    # the same mistake from the command line (read by the field's type) and from the YAML
    assert main([command, "--config", str(path), f"--{key}", text, "--train.max_steps", "1000"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
    section, name = key.split(".")
    cfg[section][name] = value
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main([command, "--config", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "prepared").exists()


def test_the_same_config_without_the_mistake_does_write(make_experiment, tmp_path):
    """The control of the test above: ``prepare`` with a valid spec creates the prepared folder."""
    import yaml

    from nmt.config import to_dict

    cfg = to_dict(make_experiment("run", model={"encoder_self": "deformable:k=3"}))
    cfg["data"]["prepared_dir"] = str(tmp_path / "prepared")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["prepare", "--config", str(path), "--data.subword.vocab_size", "24"]) == 0
    assert (tmp_path / "prepared").is_dir()


@pytest.mark.parametrize("argv, option", [
    (["translate", "--checkpoint", "x.ckpt", "--max_input_len", "-3"], "--max_input_len: must be >= 0, got -3"),
    (["translate", "--checkpoint", "x.ckpt", "--max_tokens", "0"], "--max_tokens: must be >= 1, got 0"),
    (["test", "--checkpoint", "x.ckpt", "--max_tokens", "-5"], "--max_tokens: must be >= 1, got -5"),
    (["translate", "--checkpoint", "x.ckpt", "--max_input_len", "many"], "--max_input_len: expected an integer"),
    (["average", "--dir", "d", "--last", "-2", "-o", "a.ckpt"], "--last: must be >= 1, got -2"),
    (["average", "--dir", "d", "--best", "0", "-o", "a.ckpt"], "--best: must be >= 1, got 0"),
])
def test_cli_rejects_negative_or_nonsense_numbers_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and option in capsys.readouterr().err
