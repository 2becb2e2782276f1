"""The TFill adapter (images/tfill): conventions, the pure-PyTorch StyleGAN ops, fidelity to the
authors' TC step, checkpoints and one local run.

Convention and op-definition tests need torch only. The others need the authors' checkout too:

    INPAINT_UPSTREAM_TFILL=/path/to/TFill \\
    PYTHONPATH=.:contracts/sdk $MODEL_VENV/bin/python -m pytest tests/models/test_tfill.py

The LPIPS loss's VGG16 gets seeded random weights (INPAINT_RANDOM_LOSS_WEIGHTS=1) on both sides,
which is why the fidelity test name says random_vgg: the comparison is of code paths, not weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import io
import json
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from adapters import load_adapter, upstream_checkout
from PIL import Image

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the dev venv has no torch; the local-run test does not need it
    torch = None

REPO = Path(__file__).resolve().parents[2]
SIZE = 64  # the smallest legal size (a power of two; fixed_size is capped to it)
FIDELITY_ATOL = 1e-5  # losses and every parameter/buffer after each step
OPS_ATOL = 1e-6  # the pure-PyTorch ops against the repository's reference, values and gradients
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not importable")


@pytest.fixture(scope="module")
def tfill():
    if torch is None:
        pytest.skip("torch is not importable")
    return load_adapter("tfill")


@pytest.fixture
def random_vgg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Seeded random VGG16 weights (no download) for this test only."""
    import torchvision

    monkeypatch.setenv("INPAINT_RANDOM_LOSS_WEIGHTS", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    # ensure_pretrained replaces torchvision.models.vgg16; put the original back afterwards
    monkeypatch.setattr(torchvision.models, "vgg16", torchvision.models.vgg16)


def random_pairs(n: int, size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    hole = np.zeros((n, size, size), dtype=bool)
    for i in range(n):  # a rectangle plus scattered pixels, 20-40 % holes
        y, x = rng.integers(0, size // 2, 2)
        hole[i, y : y + size // 2, x : x + size // 3] = True
    hole |= rng.random((n, size, size)) < 0.1
    return rgb, hole


# --- a. conventions (no upstream) ------------------------------------------------------------


@needs_torch
def test_to_model_space_gives_zero_one_images_and_a_one_is_known_mask(tfill) -> None:
    rgb, hole = random_pairs(3)
    rgb[0, 0, 0] = [0, 128, 255]
    batch = tfill.to_model_space(rgb, hole, SIZE, torch.device("cpu"))
    assert set(batch) == {"img_org", "img", "mask", "img_path"}
    img_org, mask = batch["img_org"], batch["mask"]
    assert img_org.shape == (3, 3, SIZE, SIZE) and img_org.dtype == torch.float32
    assert mask.shape == (3, 1, SIZE, SIZE) and mask.dtype == torch.float32
    # [0, 1] as ToTensor gives; TC.set_input maps to [-1, 1] itself (tc_model.py:76-77)
    assert img_org[0, :, 0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0], abs=1e-7)
    assert img_org.min() >= 0 and img_org.max() <= 1
    assert torch.equal(batch["img"], img_org)  # fixed size = image size: the same pixels
    # TFill polarity: 1 = known, 0 = hole
    assert torch.equal(mask[:, 0], torch.from_numpy(~hole).float())


@needs_torch
def test_white_hole_mask_files_become_zero_holes_never_0_to_255(tfill, tmp_path: Path) -> None:
    """The seed report's bug: TFill's train loader fed the mask file as is (0-255, white = 255 =
    hole) where the model wants 1 = known (dataloader/data_loader.py:93-118 vs tc_model.py:81)."""
    import inpaint_sdk

    rgb, hole = random_pairs(1)
    path = tmp_path / "mask.png"
    Image.fromarray(hole[0].astype(np.uint8) * 255, mode="L").save(path)  # contract: 255 = hole
    read = inpaint_sdk.read_hole(path)[None]
    batch = tfill.to_model_space(rgb, read, SIZE, torch.device("cpu"))
    mask = batch["mask"][0, 0]
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert (mask[torch.from_numpy(hole[0])] == 0).all()  # white (255) → 0 = hole
    assert (mask[torch.from_numpy(~hole[0])] == 1).all()  # black (0) → 1 = known
    # What TC.set_input then builds (tc_model.py:76-81): holes are 0 = mid-grey, known pixels kept
    img_m = mask * (batch["img_org"][0] * 2 - 1)
    assert (img_m[:, torch.from_numpy(hole[0])] == 0).all()
    known = torch.from_numpy(~hole[0])
    expected = torch.from_numpy(rgb[0]).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(img_m[:, known], expected[:, known], atol=1e-6)


@needs_torch
def test_fixed_size_copy_is_the_authors_pil_bicubic_resize(tfill) -> None:
    rgb, hole = random_pairs(2, size=2 * SIZE)
    batch = tfill.to_model_space(rgb, hole, SIZE, torch.device("cpu"))
    assert batch["img_org"].shape[-1] == 2 * SIZE and batch["img"].shape[-1] == SIZE
    pil = np.array(Image.fromarray(rgb[1]).resize((SIZE, SIZE), Image.BICUBIC))
    assert torch.equal(batch["img"][1], torch.from_numpy(pil).permute(2, 0, 1) / 255.0)
    assert batch["mask"].shape[-1] == 2 * SIZE  # the mask stays at image size (set_input)


@needs_torch
def test_round_trip_is_exact(tfill) -> None:
    rgb, hole = random_pairs(2)
    batch = tfill.to_model_space(rgb, hole, SIZE, torch.device("cpu"))
    out = tfill.from_model_space(batch["img_org"] * 2 - 1, rgb, hole)
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)


@needs_torch
def test_composite_keeps_known_pixels_bit_exact(tfill) -> None:
    rgb, hole = random_pairs(2)
    pred = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    out = tfill.from_model_space(pred, rgb, hole)
    assert np.array_equal(out[~hole], rgb[~hole])
    filled = ((pred.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(out[hole], filled[hole])


@needs_torch
def test_config_defaults_equal_the_manifest_and_bad_jobs_are_refused(tfill) -> None:
    manifest = json.loads((REPO / "images" / "tfill" / "manifest.json").read_text())
    defaults = dataclasses.asdict(tfill.TrainConfig())
    hp = manifest["defaults"]["hyperparameters"]
    assert {k: v for k, v in defaults.items() if k not in ("image_size", "batch_size")} == hp
    assert defaults["image_size"] == manifest["defaults"]["image_size"]
    assert defaults["batch_size"] == manifest["defaults"]["batch_size"]
    assert manifest["input"]["batch"] == {"max_any": 4, "multiple_of": 4}
    job = {"image_size": SIZE, "batch_size": 2, "hyperparameters": {}}
    assert tfill.TrainConfig.from_job(job).working_size == SIZE  # fixed_size 256 capped
    for batch in (1, 2, 3, 4, 8, 12):
        assert tfill.TrainConfig.from_job({**job, "batch_size": batch}).batch_size == batch
    for batch in (5, 6, 7, 9, 10):  # minibatch-stddev groups (networks.py:171): 6 crashes
        with pytest.raises(tfill.JobInvalid, match=f"batch_size: {batch} must be ≤ 4 or a mult"):
            tfill.TrainConfig.from_job({**job, "batch_size": batch})
    for size in (32, 96, 1024):
        with pytest.raises(tfill.JobInvalid, match=f"image_size: {size} must be a power of two"):
            tfill.TrainConfig.from_job({**job, "image_size": size})
    bad = {"fixed_size": 100, "refine_fraction": 1.0, "lambda_l1": 1.0, "image_size": 128}
    for name, value in bad.items():
        with pytest.raises(tfill.JobInvalid, match=r"fixed_size|refine_fraction|unknown"):
            tfill.TrainConfig.from_job({**job, "hyperparameters": {name: value}})


# --- b. the pure-PyTorch StyleGAN ops ----------------------------------------------------------


def blur_kernel(asymmetric: bool = False):
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None] * k[:, None]  # style_function.make_kernel
    if asymmetric:  # catches a missing flip
        k = k + torch.arange(16.0).reshape(4, 4)
    return k / k.sum()


# (up, down, pad) as style_function's Blur/Upsample/Downsample use them, plus crops (pad < 0)
UPFIRDN_CASES = [
    (1, 1, (2, 1)),
    (1, 1, (1, 1)),
    (1, 2, (1, 1)),
    (2, 1, (2, 1)),
    (1, 2, (2, 2)),
    (2, 2, (0, 0)),
    (2, 1, (-1, 1)),
    (1, 1, (-1, -1)),
]


@needs_torch
def test_pure_torch_ops_follow_their_definitions(tfill) -> None:
    ops = tfill.stylegan_ops_torch
    torch.manual_seed(0)
    x, b = torch.randn(2, 5, 6, 6), torch.randn(5)
    expected = torch.where(
        x + b[:, None, None] > 0, x + b[:, None, None], 0.2 * (x + b[:, None, None])
    )
    assert torch.allclose(ops.fused_leaky_relu(x, b), expected * 2**0.5, atol=1e-6)
    layer = ops.FusedLeakyReLU(5)
    assert list(layer.state_dict()) == ["bias"] and torch.equal(layer.bias, torch.zeros(5))
    k = blur_kernel(asymmetric=True)
    x = torch.randn(2, 3, 7, 7)
    # no resampling: a true convolution (correlation with the flipped kernel), padded
    direct = F.conv2d(F.pad(x, [2, 1, 2, 1]).reshape(6, 1, 10, 10), k.flip(0, 1)[None, None])
    assert torch.allclose(ops.upfirdn2d(x, k, pad=(2, 1)), direct.reshape(2, 3, 7, 7), atol=1e-6)
    # up = 2 puts each sample at 2i with zeros between: an impulse kernel reads them back
    impulse = torch.zeros(1, 1)
    impulse[0, 0] = 1
    up = ops.upfirdn2d(x, impulse, up=2)
    assert torch.equal(up[..., ::2, ::2], x) and (up[..., 1::2, :] == 0).all()
    for u, d, p in UPFIRDN_CASES:
        side = (7 * u + p[0] + p[1] - 4) // d + 1  # UpFirDn2d.forward's out_h
        assert ops.upfirdn2d(x, k, up=u, down=d, pad=p).shape == (2, 3, side, side)


def load_reference(path: Path, op_factory):
    """Execute one of the authors' stylegan_ops/*.py files with its nvcc `load()` replaced by
    `op_factory(module)`: their Python (autograd Functions, custom backward) runs unchanged."""
    spec = importlib.util.spec_from_file_location(f"_tfill_reference_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import torch.utils.cpp_extension  # noqa: F401 - patched below

    with mock.patch("torch.utils.cpp_extension.load", lambda *a, **k: op_factory(module)):
        spec.loader.exec_module(module)
    return module


def fused_bias_act_in_torch(x, bias, ref, act, grad, alpha, scale):
    """The elementwise rule of fused_bias_act_kernel.cu:26-47 (act 3 = leaky ReLU), in torch."""
    assert act == 3 and grad in (0, 1)
    if bias.numel():
        x = x + bias.view([1, -1] + [1] * (x.ndim - 2))  # p_b[(xi / step_b) % size_b]
    y = torch.where((x if grad == 0 else ref) > 0, x, x * alpha)
    return y * scale


@needs_torch
@pytest.mark.upstream
def test_pure_torch_ops_match_the_authors_reference_with_gradients(tfill) -> None:
    ops_dir = upstream_checkout("tfill") / "model" / "stylegan_ops"
    ops = tfill.stylegan_ops_torch
    up_ref = load_reference(
        ops_dir / "upfirdn2d.py",
        lambda m: types.SimpleNamespace(upfirdn2d=lambda *a: m.upfirdn2d_native(*a)),
    )
    up_ref.F = F  # upfirdn2d_native uses F, which upfirdn2d.py never imports (upstream bug)
    # float64, so that what is compared is the maths, not float32 summation order
    torch.manual_seed(0)
    for asymmetric in (False, True):
        k = blur_kernel(asymmetric).double()
        for u, d, p in UPFIRDN_CASES:
            x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
            ours = ops.upfirdn2d(x, k, up=u, down=d, pad=p)
            # 1. upfirdn2d_native itself (N×H×W×C layout), 2. the authors' UpFirDn2d Function
            # (their forward and hand-written backward) running that native op
            native = up_ref.upfirdn2d_native(
                x.permute(0, 2, 3, 1), k, u, u, d, d, p[0], p[1], p[0], p[1]
            ).permute(0, 3, 1, 2)
            theirs = up_ref.upfirdn2d(x, k, up=u, down=d, pad=p)
            grad_out = torch.randn_like(ours)
            (g_ours,) = torch.autograd.grad(ours, x, grad_out)
            for ref in (native, theirs):
                assert (ours - ref).abs().max().item() <= OPS_ATOL, (u, d, p)
                (g_ref,) = torch.autograd.grad(ref, x, grad_out)
                assert (g_ours - g_ref).abs().max().item() <= OPS_ATOL, (u, d, p)

    act_ref = load_reference(
        ops_dir / "fused_act.py",
        lambda m: types.SimpleNamespace(fused_bias_act=fused_bias_act_in_torch),
    )
    for shape in ((4, 8, 5, 5), (4, 16)):  # after a conv (FusedLeakyReLU) and in EqualLinear
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        x.data[0, 0] = 0.0  # at exactly 0 both take the negative slope
        ours_layer = ops.FusedLeakyReLU(shape[1]).double()
        ref_layer = act_ref.FusedLeakyReLU(shape[1]).double()
        with torch.no_grad():
            ours_layer.bias.normal_()
            ref_layer.bias.copy_(ours_layer.bias)
        ours, ref = ours_layer(x), ref_layer(x)
        assert (ours - ref).abs().max().item() <= OPS_ATOL
        grad_out = torch.randn_like(ours).requires_grad_()
        got = torch.autograd.grad(ours, (x, ours_layer.bias), grad_out, create_graph=True)
        want = torch.autograd.grad(ref, (x, ref_layer.bias), grad_out, create_graph=True)
        for g_ours, g_ref in zip(got, want, strict=True):
            assert (g_ours - g_ref).abs().max().item() <= OPS_ATOL
        # second order, as a gradient penalty (lambda_gradient > 0) would take it
        (gg_ours,) = torch.autograd.grad(got[0].pow(2).sum(), grad_out, retain_graph=True)
        (gg_ref,) = torch.autograd.grad(want[0].pow(2).sum(), grad_out)
        assert (gg_ours - gg_ref).abs().max().item() <= OPS_ATOL


@needs_torch
@pytest.mark.upstream
def test_discriminator_runs_on_the_pure_ops_and_the_batch_rule_is_real(tfill) -> None:
    import torch.utils.cpp_extension

    def no_build(*_a, **_k):
        raise AssertionError("TFill's CUDA ops were built")

    with mock.patch.object(torch.utils.cpp_extension, "load", no_build):
        up = tfill.upstream(upstream_checkout("tfill"))
    style = up.networks.style_function
    ops = tfill.stylegan_ops_torch
    assert style.upfirdn2d is ops.upfirdn2d and style.FusedLeakyReLU is ops.FusedLeakyReLU
    assert style.fused_leaky_relu is ops.fused_leaky_relu
    assert "model" not in sys.modules  # TFill's generic package names are not left behind
    torch.manual_seed(0)
    net = up.networks.StyleDiscriminator(SIZE, ndf=32)
    out = net(torch.randn(4, 3, SIZE, SIZE))
    out.sum().backward()
    assert out.shape == (4, 1) and all(p.grad is not None for p in net.parameters())
    assert "convs.0.1.bias" in net.state_dict()  # FusedLeakyReLU keeps upstream's key
    with pytest.raises(RuntimeError):  # why the manifest says batch ≤ 4 or a multiple of 4
        net(torch.randn(6, 3, SIZE, SIZE))


# --- c. fidelity to the authors' TC step ---------------------------------------------------------


@contextmanager
def authors_packages(src: Path, stylegan_ops_torch):
    """TFill's top-level packages (model, util, options) imported afresh from `src` with the
    pure-PyTorch ops, and whatever held those names put back afterwards."""
    mine = ("model", "util", "options")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in mine}
    sys.path.insert(0, str(src))
    try:
        import model

        stylegan_ops_torch.install(model)
        yield model
    finally:
        sys.path.remove(str(src))
        for k in [k for k in sys.modules if k.split(".")[0] in mine]:
            del sys.modules[k]
        sys.modules.update(saved)


def authors_opt(
    src: Path, batch_size: int, size: int = SIZE, gpu_ids: str = "-1"
) -> argparse.Namespace:
    """What `python train.py --model tc --coarse_or_refine coarse ...` parses (the student
    config at `size` px, CPU unless gpu_ids), without TrainOptions.parse()'s printing and folder
    making."""
    from model.tc_model import TC
    from options.train_options import TrainOptions

    options = TrainOptions()
    parser = TC.modify_options(options.initialize(argparse.ArgumentParser()), True)
    argv = ["--model", "tc", "--coarse_or_refine", "coarse", "--gpu_ids", gpu_ids]
    argv += ["--fixed_size", str(size), "--fine_size", str(size), "--load_size", str(size)]
    argv += ["--batch_size", str(batch_size), "--lipip_path", str(src / "model/lpips/vgg.pth")]
    opt = parser.parse_args(argv)
    opt.isTrain = True
    opt.gpu_ids = [int(i) for i in opt.gpu_ids.split(",") if int(i) >= 0]  # base_options:102-107
    return opt


def authors_batch(rgb: np.ndarray, hole: np.ndarray) -> dict:
    """A batch as their CreateDataset + default collate makes it, from white-hole mask files:
    ToTensor images (data_loader.py:59-61) and the test path's mask rule (l.116-118)."""
    from torchvision import transforms

    to_tensor = transforms.ToTensor()
    images = [to_tensor(Image.fromarray(x)) for x in rgb]
    masks = [
        torch.tensor(np.array(Image.fromarray(h.astype(np.uint8) * 255)) < 128)
        .view(1, *h.shape)
        .float()
        for h in hole
    ]
    return {
        "img_org": torch.stack(images),
        "img": torch.stack(images),  # scale_longside to fixed_size = fine_size: the same pixels
        "mask": torch.stack(masks),
        "img_path": [f"{i}.png" for i in range(len(rgb))],
    }


@needs_torch
@pytest.mark.upstream
def test_fidelity_random_vgg_two_steps_match_the_authors_tc_step(tfill, random_vgg) -> None:
    src = upstream_checkout("tfill")
    cpu = torch.device("cpu")
    assert tfill.sdk_torch.ensure_pretrained("vgg16", warn=lambda _m: None).startswith("random")
    batches = [random_pairs(2, seed=s) for s in (0, 1)]

    # theirs: options from their parser, create_model, setup + parallelize (train.py:9,13,29-31)
    with authors_packages(src, tfill.stylegan_ops_torch) as model_pkg:
        opt = authors_opt(src, batch_size=2)
        torch.manual_seed(0)
        theirs = model_pkg.create_model(opt)
        theirs.setup(opt)
        theirs.parallelize()
    # ours: the adapter's Namespace must equal their parser's on every field it sets
    cfg = tfill.TrainConfig(image_size=SIZE, batch_size=2)
    for key, value in tfill.AUTHORS_OPT.items():
        if key not in ("name", "checkpoints_dir", "nsampling"):  # not read by training
            assert getattr(opt, key) == value, key
    torch.manual_seed(0)
    ours = tfill.build(cfg, tfill.upstream(src), cpu, "coarse", train=True)
    for key in (*tfill.FROM_CONFIG, "gpu_ids", "fixed_size", "fine_size", "lipip_path"):
        assert getattr(ours.opt, key) == getattr(opt, key), key
    nets = tfill.COARSE_NETS
    for name in nets:  # same seeded initialisation
        a, b = getattr(ours, "net" + name).state_dict(), getattr(theirs, "net" + name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    start = {
        n: {k: v.clone() for k, v in getattr(ours, "net" + n).state_dict().items()} for n in nets
    }

    times = {"ours": 0.0, "theirs": 0.0}
    for step, (rgb, hole) in enumerate(batches):
        torch.manual_seed(100 + step)  # LPIPS heads have dropout in train mode: same draws
        t0 = time.perf_counter()
        tfill.train_step(ours, tfill.to_model_space(rgb, hole, cfg.working_size, cpu))
        times["ours"] += time.perf_counter() - t0
        torch.manual_seed(100 + step)
        t0 = time.perf_counter()
        theirs.set_input(authors_batch(rgb, hole))  # train.py:36-37
        theirs.optimize_parameters()
        times["theirs"] += time.perf_counter() - t0
        got, want = tfill.losses_of(ours), tfill.losses_of(theirs)
        assert list(got) == ["G_rec", "G_lp", "G_GAN", "D_real", "D_fake"]
        for name in got:
            assert abs(got[name] - want[name]) <= FIDELITY_ATOL, (step, name, got, want)
    print(f"\nCPU s/step at {SIZE} px, batch 2: adapter {times['ours'] / 2:.2f}, "
          f"authors' TC {times['theirs'] / 2:.2f}")  # fmt: skip

    worst = 0.0
    for name in nets:
        a, b = getattr(ours, "net" + name).state_dict(), getattr(theirs, "net" + name).state_dict()
        for key in a:
            diff = (a[key].float() - b[key].float()).abs().max().item()
            worst = max(worst, diff)
            assert diff <= FIDELITY_ATOL, f"{name}.{key}: max abs diff {diff}"
        moved = max((a[k].float() - start[name][k].float()).abs().max().item() for k in a)
        assert moved > 1e-6, f"{name} did not train"
    print(f"max abs parameter difference after 2 steps: {worst:.3g}")


# --- d. checkpoints, resume, the refine stage ------------------------------------------------


def write_data(root: Path, n: int = 3) -> None:
    rgb, hole = random_pairs(n, seed=2)
    for folder, arrays in (("images", rgb), ("masks", hole.astype(np.uint8) * 255)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, array in enumerate(arrays):
            Image.fromarray(array).save(root / folder / f"{i:06d}.png")
    masked = np.where(hole[..., None], 0, rgb).astype(np.uint8)  # predict inputs: holes = 0
    for folder, arrays in (("inputs", masked), ("test_masks", hole.astype(np.uint8) * 255)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, array in enumerate(arrays):
            Image.fromarray(array).save(root / folder / f"{i:06d}.png")


def run_job(tfill, root: Path, command: str, **fields) -> list[dict]:
    doc = {
        "contract_version": "1",
        "command": command,
        "job_id": f"test-tfill-{command}",
        "seed": 0,
        "device": "cpu",
        "image_size": SIZE,
        "batch_size": 1,
        **fields,
    }
    tfill.sdk.validate_against("job", doc)
    stream = io.StringIO()
    job = tfill.Job(doc, root, root / "checkpoints", root / "outputs")
    getattr(tfill, command)(job, tfill.Events(stream), tfill.sdk.StopFlag())
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def train_job(**fields) -> dict:
    return {
        "budget_s": 600,
        "data": {"train_images": "images", "train_masks": "masks"},
        **fields,
    }


@needs_torch
@pytest.mark.upstream
def test_resume_continues_the_step_count_and_loading_is_strict(
    tfill, random_vgg, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INPAINT_UPSTREAM", str(upstream_checkout("tfill")))
    write_data(tmp_path)
    first = run_job(tfill, tmp_path, "train", **train_job(max_steps=1))
    assert first[-1]["event"] == "run_stop" and first[-1]["step"] == 1
    second = run_job(tfill, tmp_path, "train", **train_job(max_steps=2))
    start = next(e for e in second if e["event"] == "run_start")
    assert start["resumed_from_step"] == 1 and "random" in start["config"]["loss_network"]
    assert second[-1]["reason"] == "max_steps" and second[-1]["step"] == 2
    assert second[-1]["images_seen"] == 2

    path = tmp_path / "checkpoints" / tfill.CHECKPOINT
    saved = torch.load(path, weights_only=False)
    assert set(saved["nets"]) == {"E", "T", "G", "D"} and saved["stage"] == "coarse"
    assert set(saved["optimizers"]) == {"optimizerG", "optimizerD"}
    key = next(iter(saved["nets"]["D"]))
    saved["nets"]["D"][key + "_tampered"] = saved["nets"]["D"].pop(key)
    torch.save(saved, path)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        run_job(tfill, tmp_path, "train", **train_job(max_steps=3))
    predict = {"data": {"inputs": "inputs", "masks": "test_masks"}, "output_dir": "out"}
    with pytest.raises(RuntimeError, match="Unexpected key"):
        run_job(tfill, tmp_path, "predict", **predict)


@needs_torch
@pytest.mark.slow
@pytest.mark.upstream
def test_refine_stage_takes_over_after_the_coarse_share_and_predict_uses_it(
    tfill, random_vgg, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INPAINT_UPSTREAM", str(upstream_checkout("tfill")))
    write_data(tmp_path)
    hp = {"refine_fraction": 0.5}
    events = run_job(tfill, tmp_path, "train", hyperparameters=hp, **train_job(max_steps=2))
    assert events[-1]["reason"] == "max_steps" and events[-1]["step"] == 2
    saved = torch.load(tmp_path / "checkpoints" / tfill.CHECKPOINT, weights_only=False)
    assert saved["stage"] == "refine" and set(saved["nets"]) == {
        "E",
        "T",
        "G",
        "D",
        "G_Ref",
        "D_Ref",
    }
    assert set(saved["optimizers"]) == {"optimizerGRef", "optimizerDRef"}
    predict = {"data": {"inputs": "inputs", "masks": "test_masks"}, "output_dir": "out"}
    events = run_job(tfill, tmp_path, "predict", hyperparameters=hp, **predict)
    assert events[0]["config"]["stage"] == "refine" and events[-1]["step"] == 3
    for i in range(3):
        given = np.asarray(Image.open(tmp_path / "inputs" / f"{i:06d}.png"))
        hole = np.asarray(Image.open(tmp_path / "test_masks" / f"{i:06d}.png")) == 255
        out = np.asarray(Image.open(tmp_path / "outputs" / "out" / f"{i:06d}.png"))
        assert out.shape == (SIZE, SIZE, 3) and np.array_equal(out[~hole], given[~hole])


# --- e. a run through the local runner -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.upstream
def test_local_run_trains_predicts_and_composites(tmp_path: Path) -> None:
    src = upstream_checkout("tfill")
    pytest.importorskip("harness.pipeline", reason="the harness is not importable")
    from runs import tiny_run_profile

    from harness.config import ModelEntry
    from harness.pipeline import Pipeline
    from harness.progress import SilentReporter
    from harness.runners.local import LocalRunner

    class RandomVggRunner(LocalRunner):
        """The local runner drops the parent's INPAINT_* variables; hand this one over."""

        def start(self, launch):
            env = {**launch.env, "INPAINT_RANDOM_LOSS_WEIGHTS": "1"}
            return super().start(dataclasses.replace(launch, env=env))

    entry = ModelEntry(
        name="tfill", image=str(REPO / "images" / "tfill"), batch_size=2, train_budget_s=10.0
    )
    # grace: the final checkpoint holds E/T/G/D and both Adam states, ~0.93 GB to write
    profile = tiny_run_profile(tmp_path, [entry], size=SIZE, setup_cap_s=300.0, grace_s=30.0)
    reporter = SilentReporter(quiet=True)
    runner = RandomVggRunner(upstream_src={"tfill": src}, reporter=reporter)
    summary = Pipeline(profile, tmp_path / "run", runner, reporter).run()
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    steps = {f"{s.kind} {s.label}": s for s in summary.steps}
    assert steps["train tfill on scenes"].result["steps"] > 0
    predict = steps["predict tfill (scenes) on faces_test"]
    assert predict.result["composites"] is True
    out = tmp_path / "run" / "predictions" / "scenes" / "tfill" / "faces_test"
    files = sorted(out.glob("*.png"))
    assert len(files) == 4
    for f in files:  # known pixels of every prediction are the masked input's, bit for bit
        given = np.asarray(Image.open(tmp_path / "run" / "inputs" / "faces_test" / f.name))
        hole = np.asarray(Image.open(profile.data_root / "masks" / "test" / f.name)) == 255
        assert np.array_equal(np.asarray(Image.open(f))[~hole], given[~hole])
    describe = steps["describe tfill"].result["describe"]
    assert describe["parameters"]["generator"] == 58_398_783  # E + T + G (upstreams.md §TFill-8)
    # describe counts at the run's size, and the style discriminator's size depends on it
    # (19,048,993 at 256 px): the reference is the authors' class built at that size
    reference = load_adapter("tfill").upstream(src).networks.StyleDiscriminator(SIZE, ndf=32)
    assert describe["parameters"]["discriminator"] == sum(p.numel() for p in reference.parameters())
