#!/usr/bin/env python
"""Download a dataset listed in datasets/NAME.yaml: the project's only network access.

Streams each archive with a progress bar, checks its sha256, and unpacks it into
datasets/NAME/ (atomically: the folder appears only once everything is in). A dataset to get
by hand (CamVid) is never fetched: one line says where to get it and where to put it.

Usage:
    python datasets/download.py voc2012
    python datasets/download.py oxford_pets --keep-archives
    python datasets/download.py my.yaml --no-verify     # a yaml without a sha256 yet
    python datasets/download.py camvid                  # where to get it and where to put it
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.data.download import download_dataset  # noqa: E402
from zoo.data.spec import DATASETS_DIR  # noqa: E402
from zoo.errors import ZooError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, download, print the dataset folder; exit 2 on a user error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="dataset yaml name (e.g. voc2012) or path to a yaml")
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS_DIR,
                        help="folder with the yaml files and downloaded data")
    parser.add_argument("--no-verify", action="store_true",
                        help="accept archives without a matching sha256 (not recommended)")
    parser.add_argument("--keep-archives", action="store_true",
                        help="keep the archives in datasets/.downloads after unpacking")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        folder = download_dataset(args.name, datasets_dir=args.datasets_dir,
                                  verify=not args.no_verify, keep_archives=args.keep_archives,
                                  progress=not args.quiet)
    except ZooError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
