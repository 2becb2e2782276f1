"""Pretrained weights that images bake at build time, each pinned by its full sha256.

Containers run without network, so loss networks (VGG16/19) and the LPIPS/FID trunks are
downloaded once, on a connected build host, into $TORCH_HOME/hub/checkpoints, and checked
against the full sha256 below (torchvision's file names carry only its first 8 hex digits).

    python inpaint_weights.py bake vgg16           # in a Dockerfile RUN step
    python inpaint_weights.py bake --skip vgg16    # BAKE_WEIGHTS=0: offline build, nothing baked

Importable without torch; only `bake` imports it (torch.hub does the download and the check).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# name: (url, full sha256, size in bytes). The sha256 values are the ones published alongside
# these files by many independent users of torchvision's and pytorch-fid's releases; the first
# 8 hex digits are also in each file name, which torchvision checks.
PRETRAINED: dict[str, tuple[str, str, int]] = {
    "vgg16": (
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        553_433_881,
    ),
    "vgg19": (
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        574_673_361,
    ),
    "alexnet": (
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        244_408_911,
    ),
}
# FID's Inception: no full sha256 of it was found from a source we could check, so this one is
# verified by the 8-digit prefix in its name only (pytorch-fid's own check).
PREFIX_ONLY: dict[str, tuple[str, str]] = {
    "inception": (
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "6726825d",
    ),
}


def checkpoints_dir() -> Path:
    """Where torch.hub looks: $TORCH_HOME/hub/checkpoints (TORCH_HOME defaults as torch's)."""
    home = os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch"
    return Path(home) / "hub" / "checkpoints"


def file_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def expected_sha256(name: str) -> str:
    """The full sha256 (or, for PREFIX_ONLY entries, the prefix) a baked file must match."""
    if name in PRETRAINED:
        return PRETRAINED[name][1]
    return PREFIX_ONLY[name][1]


def url_of(name: str) -> str:
    return PRETRAINED[name][0] if name in PRETRAINED else PREFIX_ONLY[name][0]


def bake(names: list[str], into: Path | None = None) -> list[Path]:
    """Download each named file into `into` (default: checkpoints_dir()), checked by sha256.

    A file already there with the right digest is kept. On a mismatch torch.hub removes the
    partial download and raises; nothing unverified is left behind."""
    from torch.hub import download_url_to_file

    into = into or checkpoints_dir()
    into.mkdir(parents=True, exist_ok=True)
    baked = []
    for name in names:
        url = url_of(name)
        target = into / file_name(url)
        if not target.is_file():
            download_url_to_file(url, str(target), hash_prefix=expected_sha256(name))
        baked.append(target)
    return baked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bake_parser = sub.add_parser("bake", help="download and verify weights into TORCH_HOME")
    bake_parser.add_argument("names", nargs="+", choices=sorted({*PRETRAINED, *PREFIX_ONLY}))
    bake_parser.add_argument(
        "--skip",
        action="store_true",
        help="bake nothing (BAKE_WEIGHTS=0): the image then runs only with seeded random "
        "loss-network weights (INPAINT_RANDOM_LOSS_WEIGHTS=1), and every output says so",
    )
    args = parser.parse_args(argv)
    if args.skip:
        print(f"weights NOT baked (BAKE_WEIGHTS=0): {', '.join(args.names)}", file=sys.stderr)
        return 0
    for path in bake(args.names):
        print(f"baked {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
