"""The main job's data location: data/multi30k, else ../shared/data/multi30k, else a download through
the multi30k-hf recipe, exported once to data/multi30k; one-line errors (exit 2) when none works."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from nmt.data import locate, sources
from nmt.data.errors import DataError


def write_multi30k(root: Path, tag: str) -> None:
    """All six files, each line naming ``tag`` and the file."""
    for path in locate.expected_files(root):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{tag} {path.name} 1\n{tag} {path.name} 2\n", encoding="utf-8")


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """(local, shared) data roots, both empty."""
    return tmp_path / "repo" / "data", tmp_path / "shared" / "data"


class FakeDownload:
    """Writes the files a download would, and records the roots it was asked for."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, root: Path) -> None:
        self.calls.append(root)
        write_multi30k(root, "downloaded")


def test_local_copy_comes_first(roots):
    local, shared = roots
    write_multi30k(local, "local")
    write_multi30k(shared, "shared")
    fake = FakeDownload()
    assert locate.locate_multi30k(roots, download=fake) == local
    assert fake.calls == []


def test_shared_copy_when_there_is_no_local_one(roots):
    local, shared = roots
    write_multi30k(shared, "shared")
    fake = FakeDownload()
    assert locate.locate_multi30k(roots, download=fake) == shared
    assert fake.calls == [] and not local.exists()


def test_download_into_the_local_root_when_there_is_no_copy(roots):
    local, shared = roots
    fake = FakeDownload()
    assert locate.locate_multi30k(roots, download=fake) == local
    assert fake.calls == [local]
    assert (local / "multi30k" / "val.de").read_text(encoding="utf-8").startswith("downloaded val.de")
    assert locate.locate_multi30k(roots, download=fake) == local and fake.calls == [local]  # once


def test_offline_download_is_one_line_naming_the_places_and_the_fix(roots):
    def offline(root: Path) -> None:
        raise DataError("cannot download Hugging Face dataset 'bentrevett/multi30k': unreachable (no network?)")

    with pytest.raises(DataError) as e:
        locate.locate_multi30k(roots, download=offline)
    msg = str(e.value)
    assert "\n" not in msg and "no network" in msg and "NMT_DATA_ROOT" in msg
    assert str(roots[0] / "multi30k") in msg and str(roots[1] / "multi30k") in msg and "test_2016_flickr.de" in msg


def test_incomplete_folder_is_named_not_downloaded_over(roots):
    local, _ = roots
    write_multi30k(local, "local")
    (local / "multi30k" / "val.de").unlink()
    fake = FakeDownload()
    with pytest.raises(DataError, match=r"multi30k lacks val\.de"):
        locate.locate_multi30k(roots, download=fake)
    assert fake.calls == []


def test_download_goes_through_the_multi30k_hf_recipe_and_load_dataset(tmp_path, monkeypatch):
    """The real path: recipe -> sources.load_hf -> datasets.load_dataset, exported under Multi30k's names."""
    asked = []

    def load_dataset(name, config, split):
        asked.append((name, config, split))
        n = {"train": 5, "validation": 3, "test": 2}[split]
        return datasets.Dataset.from_dict({"en": [f"{split} en {i}" for i in range(n)],
                                           "de": [f"{split} de {i}" for i in range(n)]})

    monkeypatch.setattr(sources, "reachable", lambda url, timeout=0: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    root = tmp_path / "data"
    locate.download_multi30k(root)
    assert asked == [("bentrevett/multi30k", None, s) for s in ("train", "validation", "test")]
    m = root / "multi30k"
    assert (m / "val.de").read_text(encoding="utf-8").splitlines() == [f"validation de {i}" for i in range(3)]
    assert (m / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines() == ["test en 0", "test en 1"]
    assert locate.missing_files(root) == [] and sorted(p.name for p in root.iterdir()) == ["multi30k"]


def test_interrupted_download_resumes_with_the_splits_it_lacks(tmp_path, monkeypatch):
    asked = []

    def loader(name, config, split):
        asked.append(split)
        if split == "test" and asked.count("test") == 1:
            raise DataError("connection lost")
        return datasets.Dataset.from_dict({"en": [f"{split} en"], "de": [f"{split} de"]})

    root = tmp_path / "data"
    with pytest.raises(DataError, match="connection lost"):
        locate.download_multi30k(root, hf_loader=loader)
    assert not (root / "multi30k").exists()
    locate.download_multi30k(root, hf_loader=loader)
    assert asked == ["train", "validation", "test", "test"]
    assert locate.missing_files(root) == []


def test_without_network_the_real_path_fails_in_one_line(roots, monkeypatch):
    monkeypatch.setattr(sources, "reachable", lambda url, timeout=0: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(DataError, match="unreachable") as e:
        locate.locate_multi30k(roots)
    assert "\n" not in str(e.value)


def test_command_prints_the_root_or_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert locate.main(["--no_download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Multi30k not found in data/multi30k or ../shared/data/multi30k")
    write_multi30k(tmp_path / "repo" / "elsewhere", "x")
    assert locate.main(["--root", "elsewhere"]) == 0
    assert capsys.readouterr().out.strip() == "elsewhere"
    assert locate.main(["--root", "missing"]) == 2
    write_multi30k(tmp_path / "shared" / "data", "shared")
    assert locate.main([]) == 0
    assert capsys.readouterr().out.strip() == "../shared/data"
