"""MADF adapter (images/madf): conventions, fidelity to the authors' loop, strict checkpoints.

The conventions tests need torch only. The others import the authors' code from
$INPAINT_UPSTREAM_MADF and use a seeded random VGG16 (INPAINT_RANDOM_LOSS_WEIGHTS=1) on both
sides; they run at MADF's smallest legal size (128 px) with batch 1 to keep CPU time small.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from adapters import REPO, load_adapter, upstream_checkout
from PIL import Image

torch = pytest.importorskip("torch")
transforms = pytest.importorskip("torchvision.transforms")

SIZE = 128  # 7 stride-2 levels: the smallest size MADFNet accepts


@pytest.fixture
def madf():
    return load_adapter("madf")


@pytest.fixture
def madf_upstream(madf, monkeypatch):
    """The adapter with the authors' checkout and seeded random VGG16 weights."""
    monkeypatch.setenv("INPAINT_UPSTREAM", str(upstream_checkout("madf")))
    monkeypatch.setenv("INPAINT_RANDOM_LOSS_WEIGHTS", "1")
    return madf


def random_batch(n: int = 3, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), np.uint8), rng.random((n, size, size)) < 0.4


# --- conventions (no upstream needed) --------------------------------------------------------


def test_manifest_defaults_equal_the_train_config(madf) -> None:
    manifest = json.loads((REPO / "images" / "madf" / "manifest.json").read_text())
    config = asdict(madf.TrainConfig())
    defaults = manifest["defaults"]
    assert config.pop("image_size") == defaults["image_size"]
    assert config.pop("batch_size") == defaults["batch_size"]
    assert config == defaults["hyperparameters"]
    for name, value in defaults["hyperparameters"].items():
        assert type(value) is type(config[name]), name


def test_to_model_space_matches_the_authors_transforms(madf) -> None:
    rgb, hole = random_batch()
    masked, mask, gt = madf.to_model_space(rgb, hole, torch.device("cpu"))
    assert masked.shape == mask.shape == gt.shape == (3, 3, 16, 16)
    # train.py:84-85 ToTensor + Normalize; dataset.py:49-51 RGB mask (255 = known), gt * mask
    img_tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean=madf.MEAN, std=madf.STD)]
    )
    for i in range(len(rgb)):
        their_gt = img_tf(Image.fromarray(rgb[i]))
        their_mask = transforms.ToTensor()(
            Image.fromarray(np.where(hole[i], 0, 255).astype(np.uint8)).convert("RGB")
        )
        assert torch.equal(gt[i], their_gt)
        assert torch.equal(mask[i], their_mask)
        assert torch.equal(masked[i], their_gt * their_mask)
    known = torch.from_numpy(~hole)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert (mask == known[:, None].float()).all()  # 1 = known on all 3 channels
    assert (masked.permute(1, 0, 2, 3)[:, ~known] == 0).all()
    assert gt.is_contiguous() and masked.is_contiguous()  # as ToTensor's: same conv kernels
    assert gt.min() >= -0.485 / 0.229 - 1e-6 and gt.max() <= (1 - 0.406) / 0.225 + 1e-6


def test_from_model_space_round_trips_exactly(madf) -> None:
    rgb, hole = random_batch()
    given = np.where(hole[..., None], 0, rgb).astype(np.uint8)  # predict inputs: holes are 0
    _, _, gt = madf.to_model_space(rgb, hole, torch.device("cpu"))
    out = madf.from_model_space(gt, given, hole)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out, rgb)  # holes from the output, known pixels from the input


def test_composite_keeps_known_pixels_bit_exact(madf) -> None:
    rgb, hole = random_batch()
    output = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 3
    out = madf.from_model_space(output, rgb, hole)
    assert np.array_equal(out[~hole], rgb[~hole])
    mean, std = np.array(madf.MEAN), np.array(madf.STD)
    expected = output.permute(0, 2, 3, 1).numpy() * std + mean
    expected = np.floor(np.clip(expected, 0, 1) * 255 + 0.5)
    assert np.abs(out[hole].astype(float) - expected[hole]).max() <= 1


def test_augment_flips_and_rotates_masks_with_hole_fill(madf) -> None:
    rgb, hole = random_batch(n=8, size=32)
    rng = np.random.default_rng(0)
    flipped, flipped_hole = madf.augment(rgb, hole, rng, degrees=0.0)
    for i in range(8):
        assert np.array_equal(flipped[i], rgb[i]) or np.array_equal(flipped[i], rgb[i, :, ::-1])
        assert flipped_hole[i].sum() == hole[i].sum()
    empty = np.zeros((8, 32, 32), dtype=bool)
    _, rotated = madf.augment(rgb, empty, rng, degrees=10.0)
    assert rotated.dtype == bool and rotated[:, 0, 0].any()  # rotated-in corners are holes


# --- in-process jobs -------------------------------------------------------------------------


def write_data(root: Path, images: int, masks: int) -> Path:
    rng = np.random.default_rng(1)
    for folder in ("train", "masks", "inputs", "test_masks"):
        (root / folder).mkdir(parents=True)
    for i in range(images):
        image = rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)
        Image.fromarray(image).save(root / "train" / f"{i:06d}.png")
        Image.fromarray(image // 2).save(root / "inputs" / f"{i:06d}.png")
    for i in range(masks):
        hole = np.zeros((SIZE, SIZE), np.uint8)
        hole[16 + 8 * i : 80 + 8 * i, 24:100] = 255
        Image.fromarray(hole).save(root / "masks" / f"{i:06d}.png")
        Image.fromarray(hole).save(root / "test_masks" / f"{i:06d}.png")
    return root


def job(tmp_path: Path, monkeypatch, command: str, **fields):
    """A validated Job with the mounts under tmp_path, as the SDK loads it."""
    sdk = importlib.import_module("inpaint_sdk")
    for env, sub in (("DATA", "data"), ("CHECKPOINTS", "checkpoints"), ("OUTPUTS", "outputs")):
        (tmp_path / sub).mkdir(exist_ok=True)
        monkeypatch.setenv(f"INPAINT_{env}", str(tmp_path / sub))
    doc = {"contract_version": "1", "command": command, "job_id": f"test-{command}", "seed": 3}
    doc |= {"device": "cpu", "image_size": SIZE, "batch_size": 1, **fields}
    path = tmp_path / f"{command}.json"
    path.write_text(json.dumps(doc))
    return sdk.load_job(path, command)


def run(handler, job) -> list[dict]:
    sdk = importlib.import_module("inpaint_sdk")
    stream = io.StringIO()
    handler(job, sdk.Events(stream), sdk.StopFlag())
    return [json.loads(line) for line in stream.getvalue().splitlines()]


TRAIN_DATA = {
    "train_images": "train",
    "train_masks": "masks",
    "val_images": None,
    "val_masks": None,
}


def authors_loop(up, state: dict, madf, device):
    """The authors' loop, train.py:101-148 with train.sh's flags, as a step function taking a
    uint8 batch: their own transforms (dataset.py:45-51) build the tensors every step. Returns
    (step, model); step(rgb, hole) returns the unweighted losses as floats."""
    args = argparse.Namespace(
        n_refinement_D=2,
        use_incremental_supervision=True,
        valid_weight=1.0,
        hole_weight=6.0,
        tv_weight=0.1,
        prc_weight=0.05,
        style_weight=120.0,
    )
    model = up.net.MADFNet(layer_size=7, args=args)
    model.load_state_dict(state)
    model.to(device)
    gen_optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=2e-4)
    extractor = up.net.VGG16FeatureExtractor()  # train.py:108,117 build two identical ones
    criterion = up.loss.InpaintingLoss(extractor, args)
    full = up.data_parallel.FullModel(model, extractor, args).to(device)
    img_tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(mean=madf.MEAN, std=madf.STD)]
    )

    def step(rgb: np.ndarray, hole: np.ndarray) -> dict[str, float]:
        gt = torch.stack([img_tf(Image.fromarray(x)) for x in rgb]).to(device)
        known = [Image.fromarray(np.where(h, 0, 255).astype(np.uint8)).convert("RGB") for h in hole]
        mask = torch.stack([transforms.ToTensor()(m) for m in known]).to(device)
        image = gt * mask
        full.train()
        outputs, feats, comp_feats, feat_gt = full(image, mask, gt)
        loss_dict = criterion(image, mask, outputs, gt, comp_feats, feats, feat_gt)
        gen_loss = 0.0
        for key in loss_dict:
            gen_loss += getattr(args, key + "_weight") * loss_dict[key]
        losses = {k: v.item() for k, v in loss_dict.items()}
        gen_optimizer.zero_grad()
        gen_loss.backward()
        gen_optimizer.step()
        return losses

    return step, model


@pytest.mark.slow
@pytest.mark.upstream
def test_fidelity_random_vgg_two_steps_across_a_resume_match_the_authors_loop(
    madf_upstream, tmp_path, monkeypatch
) -> None:
    madf = madf_upstream
    write_data(tmp_path / "data", images=2, masks=2)
    initial, batches = [], []
    build_model, to_model_space = madf.build_model, madf.to_model_space

    def recording_build(cfg, device, loading=False):
        model = build_model(cfg, device, loading)
        if not loading:  # a resume allocates only; the checkpoint then fills the weights
            initial.append(copy.deepcopy(model.state_dict()))
        return model

    def recording_to_model_space(rgb, hole, device):
        batches.append((rgb.copy(), hole.copy()))
        return to_model_space(rgb, hole, device)

    monkeypatch.setattr(madf, "build_model", recording_build)
    monkeypatch.setattr(madf, "to_model_space", recording_to_model_space)
    train = {"budget_s": 600, "progress_every_s": 1e-6, "data": TRAIN_DATA}
    first = run(madf.train, job(tmp_path, monkeypatch, "train", max_steps=1, **train))
    second = run(madf.train, job(tmp_path, monkeypatch, "train", max_steps=2, **train))
    starts = [e for e in first + second if e["event"] == "run_start"]
    stops = [e for e in first + second if e["event"] == "run_stop"]
    assert [s["resumed_from_step"] for s in starts] == [0, 1]
    assert [(s["step"], s["reason"]) for s in stops] == [(1, "max_steps"), (2, "max_steps")]
    ours = [e["losses"] for e in first + second if e["event"] == "progress"]
    ours = [ours[0], ours[2]]  # each run repeats its last progress line before stopping
    assert len(batches) == 2

    # The authors' loop on the same batches and the adapter's initial weights.
    their_step, model = authors_loop(madf.upstream(), initial[0], madf, torch.device("cpu"))
    theirs = [their_step(rgb, hole) for rgb, hole in batches]

    for step in range(2):
        assert ours[step].keys() == theirs[step].keys()
        for key, value in theirs[step].items():
            assert ours[step][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, key)
    saved = torch.load(tmp_path / "checkpoints" / "madf.pt", weights_only=False)
    expected = model.state_dict()
    assert saved["model"].keys() == expected.keys()
    diffs = {
        k: (saved["model"][k].float() - v.float()).abs().max().item() for k, v in expected.items()
    }
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= 1e-5, (worst, sorted(diffs.items(), key=lambda kv: -kv[1])[:8])
    print(f"MADF fidelity: max |adapter - authors| over {len(diffs)} tensors = {diffs[worst]:.3g}")
    moved = max((v.float() - initial[0][k].float()).abs().max().item() for k, v in expected.items())
    assert moved > 1e-4  # the steps did change the weights


@pytest.mark.upstream
def test_tampered_checkpoint_key_is_refused(madf_upstream, tmp_path, monkeypatch) -> None:
    madf = madf_upstream
    write_data(tmp_path / "data", images=1, masks=1)
    predict = job(
        tmp_path, monkeypatch, "predict", data={"inputs": "inputs", "masks": "test_masks"}
    )
    cfg = madf.TrainConfig(image_size=SIZE, batch_size=1)
    model = madf.build_model(cfg, torch.device("cpu"))
    state = model.state_dict()
    key = next(iter(state))
    state[key.replace("filter_gen_1", "filter_gen_one")] = state.pop(key)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    payload = {"model": state, "optimizer": optimizer.state_dict(), "step": 5, "images_seen": 5}
    payload |= {"config": asdict(cfg), "trained_s": 1.0, "rng": {}}
    importlib.import_module("inpaint_torch").save_checkpoint(
        predict.checkpoints / "madf.pt", payload
    )
    with pytest.raises(RuntimeError, match="filter_gen_one"):
        run(madf.predict, predict)
    train = job(tmp_path, monkeypatch, "train", budget_s=60, data=TRAIN_DATA)
    with pytest.raises(RuntimeError, match="filter_gen_one"):
        run(madf.train, train)
