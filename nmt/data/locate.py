"""Where the main job finds Multi30k: ``data/multi30k``, else ``../shared/data/multi30k``, else downloaded.

``python -m nmt.data.locate`` prints the data root (the folder holding ``multi30k/``) to use as
``NMT_DATA_ROOT``; when no copy is found it downloads Multi30k with the ``multi30k-hf`` recipe
(``datasets``) and exports it once to ``data/multi30k``. Errors are one line with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nmt.config import ConfigError, from_dict, load_yaml
from nmt.data.config import DataConfig
from nmt.data.errors import DataError
from nmt.data.sources import HFLoader, hf_files
from nmt.extras import MissingExtra

log = logging.getLogger(__name__)

CORPUS = "multi30k"
PREFIXES = {"train": "train", "valid": "val", "test": "test_2016_flickr"}  # split -> file prefix the configs read
LANGS = ("en", "de")
RECIPE = Path(__file__).resolve().parents[2] / "data" / "recipes" / "multi30k-hf.yaml"
DEFAULT_ROOTS = (Path("data"), Path("../shared/data"))


def expected_files(root: Path) -> list[Path]:
    """Multi30k's text files under ``root``: ``multi30k/{train,val,test_2016_flickr}.{en,de}``."""
    return [root / CORPUS / f"{prefix}.{lang}" for prefix in PREFIXES.values() for lang in LANGS]


def missing_files(root: Path) -> list[Path]:
    """The files of ``expected_files(root)`` that do not exist."""
    return [p for p in expected_files(root) if not p.is_file()]


def download_multi30k(root: Path, recipe: Path = RECIPE, hf_loader: HFLoader | None = None) -> None:
    """Download Multi30k with the ``multi30k-hf`` recipe and write it once as ``root/multi30k/<prefix>.<lang>``.

    The Hugging Face splits are exported to ``root/.multi30k-download/`` (an interrupted download
    resumes from the splits already exported) and renamed into ``root/multi30k`` when all are there.
    """
    try:
        cfg = from_dict(DataConfig, load_yaml(recipe)["data"], "data")
    except (ConfigError, KeyError) as e:
        raise DataError(f"{recipe}: not a usable data recipe ({e})") from None
    staging = root / f".{CORPUS}-download"
    cfg.root = str(staging)
    done = staging / CORPUS
    for split, prefix in PREFIXES.items():
        if all((done / f"{prefix}.{lang}").is_file() for lang in LANGS):
            continue
        files = hf_files(cfg, split, cfg.splits[split], hf_loader, progress=True)
        done.mkdir(parents=True, exist_ok=True)
        os.replace(files.tgt, done / f"{prefix}.{cfg.tgt_lang}")  # target first, as hf_files writes them
        os.replace(files.src, done / f"{prefix}.{cfg.src_lang}")
    try:
        os.replace(done, root / CORPUS)
    except OSError as e:
        raise DataError(f"cannot move the downloaded Multi30k to {root / CORPUS}: {e.strerror}") from None
    shutil.rmtree(staging, ignore_errors=True)
    log.info("Multi30k downloaded to %s", root / CORPUS)


def locate_multi30k(roots: Sequence[Path] = DEFAULT_ROOTS,
                    download: Callable[[Path], None] | None = download_multi30k) -> Path:
    """The first of ``roots`` that holds all of Multi30k's files; else Multi30k downloaded into ``roots[0]``.

    ``download=None`` only looks. A ``multi30k/`` folder that lacks files is an error (naming
    them) rather than something to download over.
    """
    for root in roots:
        missing = missing_files(root)
        if not missing:
            return root
        if (root / CORPUS).is_dir():
            raise DataError(f"{root / CORPUS} lacks {', '.join(p.name for p in missing)}: "
                            f"complete it, or remove the folder to use the next location")
    tried = " or ".join(str(r / CORPUS) for r in roots)
    hint = (f"to use a local copy, put {', '.join(p.name for p in expected_files(roots[0]))} in {roots[0] / CORPUS}/, "
            f"or set NMT_DATA_ROOT=DIR with DIR/{CORPUS}/ holding them")
    if download is None:
        raise DataError(f"Multi30k not found in {tried}; {hint}")
    log.info("Multi30k not found in %s: downloading it to %s", tried, roots[0] / CORPUS)
    try:
        download(roots[0])
    except DataError as e:
        raise DataError(f"Multi30k not found in {tried}, and downloading it failed ({e}); {hint}") from None
    missing = missing_files(roots[0])
    if missing:
        raise DataError(f"the download left {roots[0] / CORPUS} without {', '.join(p.name for p in missing)}")
    return roots[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the data root holding Multi30k (downloading it when no copy is found); exit 2 with one line if none."""
    p = argparse.ArgumentParser(prog="python -m nmt.data.locate", description=main.__doc__)
    p.add_argument("--root", help="use this data root only (it must hold multi30k/); no fallback, no download")
    p.add_argument("--no_download", action="store_true", help="only look in data/ and ../shared/data")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.root:
            root = locate_multi30k([Path(args.root)], download=None)
        else:
            root = locate_multi30k(DEFAULT_ROOTS, download=None if args.no_download else download_multi30k)
    except (DataError, MissingExtra) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
