"""More bad inputs (issue 13), each through the real CLI, held to the rules of
tests/test_bad_inputs.py: a clear error naming the file with what to do, a non-zero exit, no
traceback, and no file touched or left behind. Inputs here include FIFOs, which the snapshot
records by type without opening them.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bad_inputs import (
    HINT,
    Case,
    Workspace,
    _prepare_args,
    config_check,
    data_check,
    invoke,
    png_header,
    run_args,
    workspace,
)

BOMB_DEPTH = 6  # 10^6 values once expanded: 55 s and 896 MB before the bound


def alias_bomb(indent: str) -> str:
    """YAML lines (at `indent`) defining anchors b0..b{BOMB_DEPTH}, each ten of the one before."""
    lines = [f'{indent}b0: &b0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, BOMB_DEPTH + 1):
        refs = ", ".join([f"*b{level - 1}"] * 10)
        lines.append(f"{indent}b{level}: &b{level} [{refs}]")
    return "\n".join(lines) + "\n"


# --- benchmark.yaml ------------------------------------------------------------------------


def yaml_alias_bomb_in_hyperparameters(ws: Workspace) -> Case:
    text = ws.config.read_text().replace(
        "    batch_size: 1\n", "    batch_size: 1\n    hyperparameters:\n" + alias_bomb("      "), 1
    )
    ws.config.write_text(text)
    args = ["config", "check", "--config", str(ws.config)]  # without --profile, too
    return Case(args, [str(ws.config), "aliases expand to more than", "refused", HINT])


def yaml_alias_bomb_as_metrics(ws: Workspace) -> Case:
    text = ws.config.read_text().replace("metrics:\n- psnr\n", "metrics: *b6\n")
    ws.config.write_text(alias_bomb("") + text)
    return Case(run_args(ws), [str(ws.config), "aliases expand to more than", HINT])


def yaml_recursive_alias(ws: Workspace) -> Case:
    text = ws.config.read_text().replace("metrics:\n- psnr\n", "metrics: &m [psnr, *m]\n")
    ws.config.write_text(text)
    return Case(config_check(ws), [str(ws.config), "refer to themselves", HINT])


def config_is_a_fifo(ws: Workspace) -> Case:
    fifo = ws.root / "fifo.yaml"
    os.mkfifo(fifo)
    args = ["config", "check", "--config", str(fifo)]
    return Case(args, [str(fifo), "not a regular file (a FIFO)", HINT])


def config_zero_budget(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["train_budget"] = "0s"
    ws.write_config(doc)
    return Case(config_check(ws), ["profiles.tiny.train_budget", "'0s' is zero", HINT])


def config_absurd_budget(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["model_overrides"] = {"m0": {"train_budget": "100000000000000000000h"}}
    ws.write_config(doc)
    args = ["config", "check", "--config", str(ws.config)]
    return Case(args, ["profiles.tiny.model_overrides.m0.train_budget", "over the limit", HINT])


# --- data prepare and data check ------------------------------------------------------------


def prepare_fifo_among_photos(ws: Workspace) -> Case:
    args = _prepare_args(ws)
    fifo = ws.root / "photos" / "scenes" / "p9.png"
    os.mkfifo(fifo)
    return Case(args, [str(fifo), "not a regular file (a FIFO)", "not opened", HINT])


def prepare_photo_of_12000_squared(ws: Workspace) -> Case:
    # Over Pillow's bomb limit (89.5 Mpixels) but under twice it, where Pillow only warns and
    # then decodes 1.7 GB; the IHDR alone decides, so the header stands in for the real file.
    args = _prepare_args(ws)
    big = ws.root / "photos" / "scenes" / "p1.png"
    big.write_bytes(png_header(12_000, 12_000))
    return Case(args, [str(big), "too large to decode", "Downscale it below 89.5", "--skip"])


def check_png_of_12000_squared(ws: Workspace) -> Case:
    path = ws.png("test/faces_test/000001.png")
    path.write_bytes(png_header(12_000, 12_000))
    return Case(data_check(ws), [str(path), "too large to decode", "expected 32x32", HINT])


def yaml_merge_of_a_scalar(ws: Workspace) -> Case:
    # Merge keys are supported (tests/test_config.py); merging a scalar is refused with a hint
    # about merge keys, not about indentation.
    text = ws.config.read_text().replace("  m0:\n", "  m0:\n    <<: 5\n", 1)
    ws.config.write_text(text)
    return Case(config_check(ws), [f"{ws.config}:", "`<<` merges a mapping", "<<: *anchor"])


def _distinct_prepare_args(ws: Workspace, *extra: str) -> list[str]:
    """`_prepare_args` with test photos that no training photo shares."""
    args = _prepare_args(ws, *extra)
    for i, path in enumerate(sorted((ws.root / "photos" / "faces").iterdir())):
        Image.new("RGB", (40, 36), (200, 20 * i, 10)).save(path)
    return args


def prepare_photo_in_train_and_test(ws: Workspace) -> Case:
    args = _distinct_prepare_args(ws)
    shared = ws.root / "photos" / "faces" / "p0.png"
    shared.unlink()
    os.link(ws.root / "photos" / "scenes" / "p2.png", shared)  # a hard link to a training photo
    return Case(
        args, [str(shared), str(ws.root / "photos" / "scenes" / "p2.png"), "same image", HINT]
    )


def check_same_image_in_train_and_test(ws: Workspace) -> Case:
    test = ws.png("test/faces_test/000000.png")
    test.write_bytes(ws.png("sources/scenes/val/000000.png").read_bytes())
    return Case(
        data_check(ws), [str(test), "the same image (sha256) as", "sources/scenes/val", HINT]
    )


def prepare_bad_pairs_file(ws: Workspace) -> Case:
    masks = ws.root / "photos" / "masks"
    pairs = ws.root / "pairs.csv"
    args = _distinct_prepare_args(ws, "--masks", f"test={masks}", "--pairs", f"faces_test={pairs}")
    masks.mkdir()
    Image.new("L", (40, 36), 0).save(masks / "m0.png")
    pairs.write_text("p0.png,m0.png\np1.png m1.png\n")
    return Case(args, [f"{pairs}:2:", "expected `image,mask`", HINT])


def prepare_masks_of_two_test_sets(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["test_sets"] = {"faces_test": 2, "more_test": 2}
    ws.write_config(doc)
    masks = ws.root / "photos" / "masks"
    args = _distinct_prepare_args(ws, "--masks", f"test={masks}")
    more = ws.root / "photos" / "more"
    shutil.copytree(ws.root / "photos" / "faces", more)
    masks.mkdir()
    for i in range(2):
        Image.new("L", (40, 36), 0).save(masks / f"p{i}.png")
    args += ["--test-set", f"more_test={more}"]
    return Case(args, [str(masks), "faces_test, more_test", "one set of test masks", HINT])


def prepare_masks_not_two_level(ws: Workspace) -> Case:
    masks = ws.root / "photos" / "masks"
    args = _distinct_prepare_args(ws, "--masks", f"test={masks}")
    masks.mkdir()
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    for i in range(2):
        Image.fromarray(ramp).save(masks / f"ramp{i}.png")
    return Case(args, [str(masks / "ramp0.png"), "not a two-level mask", HINT])


def check_missing_empty_val_folder(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["sources"]["scenes"]["val"] = 0
    ws.write_config(doc)
    val = ws.png("sources/scenes/val")
    shutil.rmtree(val)
    return Case(data_check(ws), [str(val), "folder missing", "create it empty", "mkdir -p"])


def check_fifo_in_tree(ws: Workspace) -> Case:
    fifo = ws.png("test/faces_test/000002.png")
    os.mkfifo(fifo)
    return Case(data_check(ws), [str(fifo), "unexpected file", "move or delete it"])


CASES: list[Callable[[Workspace], Case]] = [
    yaml_alias_bomb_in_hyperparameters,
    yaml_alias_bomb_as_metrics,
    yaml_recursive_alias,
    config_is_a_fifo,
    config_zero_budget,
    config_absurd_budget,
    prepare_fifo_among_photos,
    prepare_photo_of_12000_squared,
    check_png_of_12000_squared,
    yaml_merge_of_a_scalar,
    prepare_photo_in_train_and_test,
    check_same_image_in_train_and_test,
    prepare_bad_pairs_file,
    prepare_masks_of_two_test_sets,
    prepare_masks_not_two_level,
    check_missing_empty_val_folder,
    check_fifo_in_tree,
]


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under `root` (links not followed): its type, mtime and, for regular files,
    bytes; FIFOs and other special files are recorded by type only (reading one would block)."""
    found: dict[str, tuple[str, int, bytes]] = {}
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", info.st_mtime_ns, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", 0, b"")
            elif stat.S_ISREG(info.st_mode):
                found[rel] = ("file", info.st_mtime_ns, path.read_bytes())
            else:
                found[rel] = ("special", info.st_mtime_ns, b"")
    return found


@pytest.mark.parametrize("make", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_gives_a_clear_error_and_changes_nothing(
    tmp_path: Path, make: Callable[[Workspace], Case]
) -> None:
    ws = workspace(tmp_path)
    case = make(ws)
    before = snapshot(tmp_path)
    code, output, escaped = invoke(case, tmp_path)
    assert not escaped, f"an exception escaped the CLI:\n{escaped}"
    assert "Traceback" not in output, output
    assert code != 0, output
    if case.exit_codes:
        assert code in case.exit_codes, output
    for fragment in case.expect:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    after = snapshot(tmp_path)
    changed = sorted(k for k in before if after.get(k) != before[k])
    created = sorted(set(after) - set(before))
    assert not changed, f"changed or removed: {changed}"
    assert not created, f"created: {created}"


def test_the_names_are_unique() -> None:
    assert len({c.__name__ for c in CASES}) == len(CASES)
