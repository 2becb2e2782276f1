"""LPIPSScorer against lpips.LPIPS's own forward pass.

No pretrained trunk can be downloaded here, so these tests use a seeded random trunk (the test
names say `random_backbone`): they check the plumbing (scaling, normalisation, linear layers,
spatial mean, batching, feature reuse, weight loading), not the published LPIPS numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from _helpers import CASES, assert_close, seed_all, stack

torch = pytest.importorskip("torch", reason="LPIPS needs torch (the model venv has it)")
lpips = pytest.importorskip("lpips", reason="the lpips package is the LPIPS reference")
torchvision = pytest.importorskip("torchvision")
import lpips_scorer  # noqa: E402
from lpips_scorer import (  # noqa: E402
    LPIPS_BACKBONES,
    PRETRAINED,
    RANDOM_BACKBONE,
    LPIPSScorer,
    WeightsCorrupt,
    backbone_path,
)

# Per pair against lpips.LPIPS.forward in fp32 on the CPU (torchmetrics allows 1e-4).
LPIPS_ATOL = 1e-5
SEED = 0
# torchvision's deprecation notes for lpips' `pretrained=` calls, in the reference models.
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated since 0.13:UserWarning")


def _reference_lpips(pred: np.ndarray, gt: np.ndarray, model: object) -> float:
    """lpips' own path: im2tensor ([-1, 1]) and LPIPS.forward(normalize=False), one pair."""
    with torch.no_grad():
        out = model(lpips.im2tensor(pred), lpips.im2tensor(gt), normalize=False)  # type: ignore[operator]
    return float(out.flatten()[0])


def _reference_model(net: str) -> object:
    torch.manual_seed(SEED)  # the scorer builds its random trunk from the same seed
    return lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()


def _photo_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    # 48×48 crops of the bundled photographs: real structure, small enough for the CPU.
    photos = [p for name, p in CASES.items() if "jpeg" in name]
    return [(p.pred[:48, :48], p.gt[:48, :48]) for p in photos]


@pytest.fixture(scope="module")
def alex() -> LPIPSScorer:
    return LPIPSScorer("alex", "cpu", 4, weights_dir=None, allow_random_backbone=True, seed=SEED)


@pytest.fixture(scope="module")
def reference_alex() -> object:
    return _reference_model("alex")


def _check_against_reference(scorer: LPIPSScorer, reference: object, what: str) -> None:
    pairs = [(c.pred, c.gt) for c in (CASES["correlated"], CASES["independent_noise"])]
    pairs += _photo_pairs()
    for i, (pred, gt) in enumerate(pairs):
        ours = scorer(pred[None], gt[None])
        assert ours.dtype == np.float64 and ours.shape == (1,)
        assert_close(ours, [_reference_lpips(pred, gt, reference)], LPIPS_ATOL, f"{what} {i}")


def test_lpips_random_backbone_alex_matches_lpips_forward(
    alex: LPIPSScorer, reference_alex: object
) -> None:
    assert alex.weights == RANDOM_BACKBONE
    _check_against_reference(alex, reference_alex, "alex pair")


@pytest.mark.slow
def test_lpips_random_backbone_vgg_matches_lpips_forward(tmp_path: object) -> None:
    # One vgg16 only (138M parameters to initialise): the reference is lpips' forward on the
    # scorer's own model; the seeded trunk itself is checked with alex above.
    scorer = LPIPSScorer("vgg", "cpu", 2, tmp_path, allow_random_backbone=True, seed=SEED)  # type: ignore[arg-type]
    assert scorer.weights == RANDOM_BACKBONE and len(scorer.model.lins) == 5
    _check_against_reference(scorer, scorer.model, "vgg pair")


def test_lpips_random_backbone_identical_images_score_zero(alex: LPIPSScorer) -> None:
    gt = CASES["identical"].gt[None]
    assert_close(alex(gt, gt), [0.0], LPIPS_ATOL, "identical")


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_lpips_random_backbone_batched_equals_per_pair(
    batch_size: int, alex: LPIPSScorer, reference_alex: object
) -> None:
    pairs = [c for c in CASES.values() if c.gt.shape == (32, 32, 3)]
    pred, gt, _ = stack(pairs)
    saved, alex.batch_size = alex.batch_size, batch_size
    try:
        whole = alex(pred, gt)
    finally:
        alex.batch_size = saved
    singles = [_reference_lpips(p.pred, p.gt, reference_alex) for p in pairs]
    assert_close(whole, singles, LPIPS_ATOL, f"batch_size {batch_size}")


def test_lpips_backbone_file_is_loaded_into_lpips_trunk(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A (random) torchvision alexnet saved where the baked file goes, its sha256 accepted.
    torch.manual_seed(123)
    trunk = torchvision.models.alexnet(weights=None)
    path = backbone_path("alex", tmp_path)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True)
    torch.save(trunk.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(LPIPS_BACKBONES, "alex", (LPIPS_BACKBONES["alex"][0], digest))
    scorer = LPIPSScorer("alex", "cpu", 2, tmp_path)  # type: ignore[arg-type]
    assert scorer.weights == PRETRAINED
    assert scorer.provenance == f"alexnet-owt-7be5be79.pth sha256 {digest}"
    # Reference: lpips building its trunk through torchvision, handed the same network.
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda **_: trunk)
    reference = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=False, verbose=False).eval()
    for pair in (CASES["correlated"], CASES["odd_64x65"]):
        ref = _reference_lpips(pair.pred, pair.gt, reference)
        assert_close(scorer(pair.pred[None], pair.gt[None]), [ref], LPIPS_ATOL, "loaded trunk")


def test_lpips_random_backbone_gt_feature_reuse_equals_forward(alex: LPIPSScorer) -> None:
    crops = _photo_pairs()
    pred = np.stack([p for p, _ in crops])
    gt = np.stack([g for _, g in crops])
    other = np.ascontiguousarray(pred[:, ::-1])  # a second "model" against the same gt
    features = alex.features(gt)
    assert len(features) == len(gt)
    with torch.no_grad():
        forward = [
            alex.model(lpips.im2tensor(a), lpips.im2tensor(b)).item()
            for images in (pred, other)
            for a, b in zip(images, gt, strict=True)
        ]
    reused = np.concatenate([alex.distance(pred, features), alex.distance(other, features)])
    assert_close(reused, forward, LPIPS_ATOL, "gt features reused for two models")
    # Rows of the features can be taken out of order, and moved to the CPU to be kept.
    order = np.array([2, 0, 1])[: len(gt)]
    subset = alex.distance(pred[order], features[order].to("cpu"))
    assert_close(subset, reused[order], LPIPS_ATOL, "feature rows picked by index")


def test_lpips_refuses_images_smaller_than_the_trunk_takes(alex: LPIPSScorer) -> None:
    small = np.zeros((1, 30, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="LPIPS alex needs images of at least 31 px"):
        alex(small, small)
    smallest = np.zeros((1, 31, 31, 3), np.uint8)
    assert alex(smallest, smallest).shape == (1,)


def test_lpips_distance_refuses_mismatched_rows(alex: LPIPSScorer) -> None:
    pred, gt, _ = stack([CASES["correlated"], CASES["identical"]])
    with pytest.raises(ValueError, match="2 predictions but 1 gt feature rows"):
        alex.distance(pred, alex.features(gt[:1]))


def test_lpips_backbone_with_wrong_sha256_is_refused(tmp_path: object) -> None:
    path = backbone_path("alex", tmp_path)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsCorrupt, match="is not the pinned 7be5be791159"):
        LPIPSScorer("alex", "cpu", 2, tmp_path)  # type: ignore[arg-type]


def test_lpips_backbones_agree_with_the_sdk() -> None:
    inpaint_torch = pytest.importorskip("inpaint_torch")
    assert LPIPS_BACKBONES["alex"] == inpaint_torch.PRETRAINED["alexnet"]
    assert LPIPS_BACKBONES["vgg"] == inpaint_torch.PRETRAINED["vgg16"]


def test_lpips_random_backbone_is_seeded_and_leaves_global_rng_alone() -> None:
    seed_all(7)
    before = torch.get_rng_state()
    a = LPIPSScorer("alex", "cpu", 2, allow_random_backbone=True, seed=SEED)
    b = LPIPSScorer("alex", "cpu", 2, allow_random_backbone=True, seed=SEED)
    assert torch.equal(before, torch.get_rng_state())
    for (name, x), (_, y) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    assert lpips_scorer.RANDOM_BACKBONE == "random (test only)"
