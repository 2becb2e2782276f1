"""Baked weights (contracts/sdk/inpaint_weights.py): pinned by full sha256, verified on download
and again before use; BAKE_WEIGHTS=0 bakes nothing and says so."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "contracts" / "sdk"))
import inpaint_weights  # noqa: E402

torch = pytest.importorskip("torch")


def test_each_full_sha256_extends_the_prefix_in_its_file_name() -> None:
    for name, (url, sha, size) in inpaint_weights.PRETRAINED.items():
        prefix = inpaint_weights.file_name(url).rsplit("-", 1)[1].removesuffix(".pth")
        assert len(sha) == 64 and sha.startswith(prefix), name
        assert size > 100_000_000, name
    for name, (url, prefix) in inpaint_weights.PREFIX_ONLY.items():
        assert url.endswith(f"-{prefix}.pth"), name


@pytest.fixture
def local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, bytes]:
    """A stand-in weights file served from a file:// URL under the name `vgg16`."""
    payload = b"stand-in weights " * 1000
    source = tmp_path / "served" / "vgg16-397923af.pth"
    source.parent.mkdir()
    source.write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(inpaint_weights.PRETRAINED, "vgg16", (source.as_uri(), sha, len(payload)))
    return sha, payload


def test_bake_downloads_and_keeps_a_file_with_the_pinned_sha256(
    tmp_path: Path, local_weights: tuple[str, bytes]
) -> None:
    into = tmp_path / "hub" / "checkpoints"
    [baked] = inpaint_weights.bake(["vgg16"], into)
    assert baked == into / "vgg16-397923af.pth"
    assert baked.read_bytes() == local_weights[1]


def test_bake_refuses_a_file_whose_sha256_differs_and_leaves_nothing(
    tmp_path: Path, local_weights: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, size = inpaint_weights.PRETRAINED["vgg16"]
    monkeypatch.setitem(inpaint_weights.PRETRAINED, "vgg16", (url, "0" * 64, size))
    into = tmp_path / "hub" / "checkpoints"
    with pytest.raises(RuntimeError, match="invalid hash value"):
        inpaint_weights.bake(["vgg16"], into)
    assert list(into.iterdir()) == []


def test_bake_skip_bakes_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert inpaint_weights.main(["bake", "--skip", "vgg16", "vgg19"]) == 0
    assert "weights NOT baked (BAKE_WEIGHTS=0): vgg16, vgg19" in capsys.readouterr().err
    assert not (tmp_path / "hub").exists()


def test_a_baked_file_with_another_sha256_is_refused_before_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inpaint_torch
    from inpaint_sdk import BadData

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = inpaint_torch.pretrained_path("vgg16")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"tampered")
    with pytest.raises(BadData, match="is not the pinned 397923af8e79"):
        inpaint_torch.ensure_pretrained("vgg16", warn=print)
