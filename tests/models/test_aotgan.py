"""The AOT-GAN adapter (images/aotgan): conventions, fidelity to the authors' trainer, checkpoints
and one local run.

Convention tests need torch only. The others need the authors' checkout too:

    INPAINT_UPSTREAM_AOTGAN=/path/to/AOT-GAN-for-Inpainting \\
    PYTHONPATH=.:contracts/sdk $MODEL_VENV/bin/python -m pytest tests/models/test_aotgan.py

The loss VGG19s get seeded random weights (INPAINT_RANDOM_LOSS_WEIGHTS=1) on both sides, which is
why the fidelity test names say random_vgg: the comparison is of code paths, not of weights.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import io
import json
import sys
import types
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from adapters import load_adapter, upstream_checkout
from PIL import Image

try:
    import torch
except ImportError:  # the dev venv has no torch; the local-run test does not need it
    torch = None

REPO = Path(__file__).resolve().parents[2]
SIZE = 64  # the smallest legal size: 32 px fails upstream (ReflectionPad2d(8) at size/4)
FIDELITY_ATOL = 1e-5  # losses and every parameter/buffer after each step
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not importable")


@pytest.fixture(scope="module")
def aot():
    if torch is None:
        pytest.skip("torch is not importable")
    return load_adapter("aotgan")


@pytest.fixture
def random_vgg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Seeded random VGG19 weights (no download) for this test only."""
    import torchvision

    monkeypatch.setenv("INPAINT_RANDOM_LOSS_WEIGHTS", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    # ensure_pretrained replaces torchvision.models.vgg19; put the original back afterwards
    monkeypatch.setattr(torchvision.models, "vgg19", torchvision.models.vgg19)


def random_pairs(n: int, size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    hole = rng.random((n, size, size)) < 0.3
    return rgb, hole


# --- a. conventions (no upstream) ------------------------------------------------------------


@needs_torch
def test_to_model_space_gives_minus_one_to_one_and_one_channel_hole_mask(aot) -> None:
    rgb, hole = random_pairs(3, size=12)
    rgb[0, 0, 0] = [0, 128, 255]
    image, mask = aot.to_model_space(rgb, hole, torch.device("cpu"))
    assert image.shape == (3, 3, 12, 12) and image.dtype == torch.float32
    assert mask.shape == (3, 1, 12, 12)
    assert image[0, :, 0, 0].tolist() == pytest.approx([-1.0, 128 / 255 * 2 - 1, 1.0], abs=1e-6)
    assert image.min() >= -1 and image.max() <= 1
    # AOT-GAN polarity: 1 = hole
    assert torch.equal(mask[:, 0].bool(), torch.from_numpy(hole))


@needs_torch
def test_masked_input_fills_holes_white_and_keeps_known_pixels(aot) -> None:
    rgb, hole = random_pairs(2, size=16)
    image, mask = aot.to_model_space(rgb, hole, torch.device("cpu"))
    masked = aot.masked_input(image, mask)
    holes = mask.expand_as(image).bool()
    assert (masked[holes] == 1.0).all()
    assert torch.equal(masked[~holes], image[~holes])


@needs_torch
def test_round_trip_is_exact(aot) -> None:
    rgb, _ = random_pairs(4, size=16)
    everywhere = np.ones(rgb.shape[:3], dtype=bool)
    image, _ = aot.to_model_space(rgb, everywhere, torch.device("cpu"))
    back = aot.from_model_space(image, np.zeros_like(rgb), everywhere)
    assert back.dtype == np.uint8 and np.array_equal(back, rgb)


@needs_torch
def test_composite_keeps_known_pixels_bit_exact(aot) -> None:
    rgb, hole = random_pairs(3, size=16, seed=1)
    pred = torch.empty(3, 3, 16, 16).uniform_(-1.5, 1.5, generator=torch.Generator().manual_seed(0))
    out = aot.from_model_space(pred, rgb, hole)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], rgb[~hole])
    expected = ((pred.clamp(-1, 1) + 1) / 2 * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(out[hole], expected[hole])


@needs_torch
def test_config_defaults_equal_the_manifest_and_bad_jobs_are_refused(aot) -> None:
    manifest = json.loads((REPO / "images" / "aotgan" / "manifest.json").read_text())
    defaults = dataclasses.asdict(aot.TrainConfig())
    hp = manifest["defaults"]["hyperparameters"]
    assert {k: defaults[k] for k in hp} == {**hp, "rates": tuple(hp["rates"])}
    assert defaults["image_size"] == manifest["defaults"]["image_size"]
    assert defaults["batch_size"] == manifest["defaults"]["batch_size"]
    job = {"image_size": SIZE, "batch_size": 2, "hyperparameters": {"rates": [1, 2]}}
    assert aot.TrainConfig.from_job(job).rates == (1, 2)
    with pytest.raises(aot.JobInvalid, match="hyperparameters: unknown field"):
        aot.TrainConfig.from_job({**job, "hyperparameters": {"lr": 1.0}})
    with pytest.raises(aot.JobInvalid, match="image_size: 32"):
        aot.TrainConfig.from_job({**job, "image_size": 32})


# --- b. fidelity to the authors' trainer -----------------------------------------------------


def authors_trainer(
    aot, src: Path, batches, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device=None
):
    """Their Trainer (src/trainer/trainer.py) with its data loader replaced by `batches`, as
    train.py would build it (global_rank 1 skips only tqdm, the CUDA timers, logs and saving).
    Its `.cuda()` calls go to `device` (default CPU)."""
    stub = types.ModuleType("stub")
    stub.SummaryWriter = stub.tqdm = None  # top-level imports of trainer.py:9-10, unused here
    for name in ("torch.utils.tensorboard", "tqdm"):
        try:
            importlib.import_module(name)
        except ImportError:
            monkeypatch.setitem(sys.modules, name, stub)
    args = Namespace(
        model="aotgan",
        block_num=8,
        rates=[1, 2, 4, 8],
        gan_type="smgan",
        rec_loss={"L1": 1.0, "Style": 250.0, "Perceptual": 0.1},
        adv_weight=0.01,
        lrg=1e-4,
        lrd=1e-4,
        beta1=0.5,
        beta2=0.999,
        iterations=len(batches),
        save_dir=str(tmp_path / "experiments"),
        global_rank=1,
        distributed=False,
        tensorboard=False,
    )
    with aot.upstream_on_path(src), aot.cuda_calls_on(device or torch.device("cpu")):
        module = importlib.import_module("trainer.trainer")
        loader = iter([(image, mask, ["x.png"] * len(image)) for image, mask in batches])
        monkeypatch.setattr(module, "create_loader", lambda _args: loader)
        torch.manual_seed(0)
        trainer = module.Trainer(args)
    return trainer, args


@needs_torch
@pytest.mark.upstream
def test_fidelity_random_vgg_two_steps_match_the_authors_trainer(
    aot, random_vgg, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src = upstream_checkout("aotgan")
    cpu = torch.device("cpu")
    assert aot.ensure_pretrained("vgg19", warn=lambda _m: None).startswith("random")
    batches = [aot.to_model_space(*random_pairs(1, seed=s), cpu) for s in (0, 1)]

    theirs, args = authors_trainer(aot, src, batches, tmp_path, monkeypatch)
    start = {
        "G": copy.deepcopy(theirs.netG.state_dict()),
        "D": copy.deepcopy(theirs.netD.state_dict()),
    }
    seen: list[tuple[str, object]] = []

    def recording(name, fn):
        def call(*a):
            out = fn(*a)
            seen.append((name, out))
            return out

        return call

    theirs.rec_loss_func = {k: recording(k, f) for k, f in theirs.rec_loss_func.items()}
    theirs.adv_loss = recording("adv", theirs.adv_loss)
    with aot.cuda_calls_on(cpu):
        theirs.train()

    ours = aot.build_nets(
        aot.TrainConfig(image_size=SIZE, batch_size=2), cpu, aot.import_upstream(src)
    )
    ours.G.load_state_dict(start["G"], strict=True)
    ours.D.load_state_dict(start["D"], strict=True)
    our_losses = [aot.train_step(ours, image, mask) for image, mask in batches]

    for step, losses in enumerate(our_losses):
        got = dict(seen[4 * step : 4 * step + 4])
        dis_loss, gen_loss = got.pop("adv")
        expected = {k: args.rec_loss[k] * v for k, v in got.items()}
        expected |= {"advg": gen_loss * args.adv_weight, "advd": dis_loss}
        assert list(losses) == list(expected)
        for name, value in losses.items():
            assert abs(value.item() - expected[name].item()) <= FIDELITY_ATOL, (step, name)
    for net, mine, authors in (("G", ours.G, theirs.netG), ("D", ours.D, theirs.netD)):
        a, b = mine.state_dict(), authors.state_dict()
        assert a.keys() == b.keys()
        for key in a:
            diff = (a[key].float() - b[key].float()).abs().max().item()
            assert diff <= FIDELITY_ATOL, f"{net}.{key}: max abs diff {diff}"
        moved = max((a[k].float() - start[net][k].float()).abs().max().item() for k in a)
        assert moved > 1e-6, f"{net} did not train"


# --- c. checkpoints --------------------------------------------------------------------------


def write_data(root: Path, n: int = 3) -> None:
    rgb, hole = random_pairs(n, seed=2)
    for folder, arrays in (("images", rgb), ("masks", hole.astype(np.uint8) * 255)):
        (root / folder).mkdir(parents=True)
        for i, array in enumerate(arrays):
            Image.fromarray(array).save(root / folder / f"{i:06d}.png")


def run_train(aot, root: Path, max_steps: int) -> list[dict]:
    doc = {
        "contract_version": "1",
        "command": "train",
        "job_id": "test-aotgan",
        "seed": 0,
        "device": "cpu",
        "image_size": SIZE,
        "batch_size": 1,
        "budget_s": 600,
        "max_steps": max_steps,
        "data": {"train_images": "images", "train_masks": "masks"},
    }
    import inpaint_sdk  # on sys.path once load_adapter ran

    inpaint_sdk.validate_against("job", doc)
    stream = io.StringIO()
    job = aot.Job(doc, root, root / "checkpoints", root / "outputs")
    aot.train(job, aot.Events(stream), aot.StopFlag())
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@needs_torch
@pytest.mark.upstream
def test_resume_continues_the_step_count_and_loading_is_strict(
    aot, random_vgg, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INPAINT_UPSTREAM", str(upstream_checkout("aotgan")))
    write_data(tmp_path)
    first = run_train(aot, tmp_path, max_steps=1)
    assert first[-1]["event"] == "run_stop" and first[-1]["step"] == 1
    second = run_train(aot, tmp_path, max_steps=2)
    start = next(e for e in second if e["event"] == "run_start")
    assert start["resumed_from_step"] == 1 and "random" in start["config"]["loss_network"]
    assert second[-1]["reason"] == "max_steps" and second[-1]["step"] == 2
    assert second[-1]["images_seen"] == 2

    path = tmp_path / "checkpoints" / aot.CHECKPOINT
    saved = torch.load(path, weights_only=False)
    key = next(iter(saved["G"]))
    saved["G"][key + "_tampered"] = saved["G"].pop(key)
    torch.save(saved, path)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        run_train(aot, tmp_path, max_steps=3)


@needs_torch
@pytest.mark.upstream
def test_describe_counts_the_authors_networks(aot, monkeypatch: pytest.MonkeyPatch) -> None:
    # counted on the meta device; the reference is each class built with real weights
    monkeypatch.setenv("INPAINT_UPSTREAM", str(upstream_checkout("aotgan")))
    up = aot.import_upstream()
    cfg = aot.TrainConfig(image_size=64, batch_size=1)
    G = aot.make_generator(dataclasses.asdict(cfg), up)
    counted = aot.MODEL.parameters(cfg, G)
    assert counted["discriminator"] == sum(p.numel() for p in up.Discriminator().parameters())
    vgg19 = importlib.import_module("torchvision").models.vgg19(weights=None).features
    assert counted["other"]["vgg19_style_loss"] == sum(p.numel() for p in vgg19.parameters())


# --- d. a run through the local runner -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.upstream
def test_local_run_trains_predicts_and_composites(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src = upstream_checkout("aotgan")
    pipeline = pytest.importorskip("harness.pipeline", reason="the harness is not importable")
    from runs import tiny_run_profile

    from harness.config import ModelEntry
    from harness.progress import SilentReporter
    from harness.runners.local import LocalRunner

    entry = ModelEntry(
        name="aotgan", image=str(REPO / "images" / "aotgan"), batch_size=1, train_budget_s=8.0
    )
    # The pipeline describes at the run's size and at 256 px, minutes on a CPU: 64 px only here.
    describing = pytest.importorskip("harness.describing")
    describe_small = functools.partial(describing.describe_job, reference_sizes=())
    monkeypatch.setattr(describing, "describe_job", describe_small)
    # generous caps: a CPU step at 64 px takes seconds on a busy 2-core box
    profile = tiny_run_profile(tmp_path, [entry], size=SIZE, setup_cap_s=300.0, grace_s=120.0)
    reporter = SilentReporter(quiet=True)
    monkeypatch.setenv("INPAINT_RANDOM_LOSS_WEIGHTS", "1")  # the local runner passes it on
    runner = LocalRunner(upstream_src={"aotgan": src}, reporter=reporter)
    summary = pipeline.Pipeline(profile, tmp_path / "run", runner, reporter).run()
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    steps = {f"{s.kind} {s.label}": s for s in summary.steps}
    assert steps["train aotgan on scenes"].result["steps"] > 0
    predict = steps["predict aotgan (scenes) on faces_test"]
    assert predict.result["composites"] is True
    out = tmp_path / "run" / "predictions" / "scenes" / "aotgan" / "faces_test"
    assert len(list(out.glob("*.png"))) == 4
    describe = steps["describe aotgan"].result["describe"]
    assert describe["parameters"]["generator"] == 15_200_835
    assert describe["flops"]["image_size"] == SIZE
