"""Data sources: Hugging Face datasets built from local files (no hub), sacrebleu test sets from a
pre-populated cache, and one-line errors when the network is needed but absent."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import sacrebleu
from helpers.toy_corpus import make_cfg, sentences, to_target

from nmt.data import sources
from nmt.data.errors import DataError
from nmt.data.prepare import load_prepared, prepare

HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Any network probe fails; the datasets cache lives in tmp_path."""
    monkeypatch.setattr(sources, "reachable", lambda url, timeout=0: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def wmt_style(n: int, seed: int) -> datasets.Dataset:
    src = sentences(n, seed)
    return datasets.Dataset.from_dict({"translation": [{"de": to_target(s), "en": s} for s in src]})


def test_hf_save_to_disk_exported_once(tmp_path):
    saved = tmp_path / "wmt-like"
    datasets.DatasetDict({"train": wmt_style(200, 0), "validation": wmt_style(20, 1),
                          "test": wmt_style(15, 2)}).save_to_disk(str(saved))
    cfg = make_cfg(tmp_path, source="hf", hf_name=str(saved), splits=dict(HF_SPLITS))
    summary = prepare(cfg, progress=False)
    assert [summary.splits[s].sentences for s in ("train", "valid", "test")] == [200, 20, 15]
    exported = Path(cfg.root) / "toy"
    assert (exported / "validation.en").read_text(encoding="utf-8").splitlines() == sentences(20, 1)
    assert (exported / "validation.de").read_text(encoding="utf-8").splitlines()[3] == to_target(sentences(20, 1)[3])

    def loader_must_not_run(*args):
        raise AssertionError("the exported text should be reused")

    again = load_prepared(cfg, hf_loader=loader_must_not_run)
    assert len(again.splits["train"]) == 200


def test_hf_json_files_through_load_dataset(tmp_path):
    """Multi30k layout (columns en, de; splits train/validation/test) read by datasets.load_dataset."""
    folder = tmp_path / "multi30k-json"
    folder.mkdir()
    for i, split in enumerate(("train", "validation", "test")):
        lines = sentences(150 if split == "train" else 12, i)
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"en": s, "de": to_target(s)}) + "\n" for s in lines)
    cfg = make_cfg(tmp_path, source="hf", hf_name=str(folder), splits=dict(HF_SPLITS), src_lang="de", tgt_lang="en")
    data = load_prepared(cfg)
    assert len(data.splits["train"]) == 150
    assert data.source_text("test") == [to_target(s) for s in sentences(12, 2)]
    assert data.target_text("test") == sentences(12, 2)


def test_hf_injected_loader_and_split_mapping(tmp_path):
    asked = []

    def loader(name, config, split):
        asked.append((name, config, split))
        return wmt_style(60 if split == "train" else 8, len(asked))

    cfg = make_cfg(tmp_path, source="hf", hf_name="wmt14", hf_config="de-en", src_lang="de", tgt_lang="en",
                   splits={"train": "train", "valid": "validation"}, subword=make_cfg(tmp_path).subword)
    cfg.subword.vocab_size = 60
    summary = prepare(cfg, progress=False, hf_loader=loader)
    assert asked == [("wmt14", "de-en", "train"), ("wmt14", "de-en", "validation")]
    assert set(summary.splits) == {"train", "valid"}
    assert (Path(cfg.root) / "toy" / "train.de").is_file()


def test_hf_wrong_language_and_split_are_named(tmp_path):
    saved = tmp_path / "ds"
    datasets.DatasetDict({"train": wmt_style(30, 0)}).save_to_disk(str(saved))
    cfg = make_cfg(tmp_path, source="hf", hf_name=str(saved), src_lang="fr", splits={"train": "train"})
    with pytest.raises(DataError, match="translation has no language 'fr'"):
        prepare(cfg, progress=False)
    cfg = make_cfg(tmp_path, source="hf", hf_name=str(saved), splits={"train": "training"})
    with pytest.raises(DataError, match="no split 'training' \\(has train\\)"):
        prepare(cfg, progress=False)
    columns = datasets.Dataset.from_dict({"en": ["a"], "cs": ["b"]})
    with pytest.raises(DataError, match="no column 'de'"):
        sources.hf_columns(columns, "en", "de", "x")


def test_hf_without_network_one_line_with_hint(tmp_path):
    cfg = make_cfg(tmp_path, source="hf", hf_name="wmt14", hf_config="de-en", splits={"train": "train"})
    with pytest.raises(DataError) as e:
        prepare(cfg, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "unreachable" in msg and "--data.root" in msg and "NMT_DATA_ROOT" in msg


def test_hf_name_required(tmp_path):
    with pytest.raises(DataError, match="data.hf_name is not set"):
        prepare(make_cfg(tmp_path, source="hf"), progress=False)


def populate_sacrebleu_cache(monkeypatch, tmp_path, name, langpair, src, ref):
    ds = sacrebleu.DATASETS[name]
    monkeypatch.setattr(ds, "_outdir", str(tmp_path / "sacrebleu" / name))
    (tmp_path / "sacrebleu" / name).mkdir(parents=True)
    for field in ds.fieldnames(langpair):
        lines = {"src": src, "ref": ref}.get(field, [field] * len(src))
        Path(ds._get_txt_file_path(langpair, field)).write_text("".join(x + "\n" for x in lines), encoding="utf-8")


def test_sacrebleu_test_set_from_cache(toy, tmp_path, monkeypatch):
    src = sentences(25, 11)
    populate_sacrebleu_cache(monkeypatch, tmp_path, "wmt14", "en-de", src, [to_target(s) for s in src])
    toy.test_sacrebleu = "wmt14"
    data = load_prepared(toy)
    assert len(data.splits["test"]) == 25
    assert data.source_text("test") == src and data.target_text("test")[0] == to_target(src[0])
    assert (Path(toy.root) / "toy" / "sacrebleu.wmt14.de").is_file()


def test_sacrebleu_not_cached_and_offline(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(sacrebleu.DATASETS["wmt13"], "_outdir", str(tmp_path / "empty-cache"))
    toy.valid_sacrebleu = "wmt13"
    with pytest.raises(DataError) as e:
        prepare(toy, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "wmt13 (en-de)" in msg and "unreachable" in msg and "--data.root" in msg


def test_sacrebleu_unknown_name_and_pair(toy):
    toy.test_sacrebleu = "wmt141"
    with pytest.raises(DataError, match="data.test_sacrebleu: unknown sacrebleu test set 'wmt141'"):
        prepare(toy, progress=False)
    toy.test_sacrebleu = "wmt14"
    toy.src_lang, toy.tgt_lang = "en", "ja"
    with pytest.raises(DataError, match="wmt14 has no language pair en-ja"):
        prepare(toy, progress=False)
