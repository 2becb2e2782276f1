"""The SDK's checkpoint files (contracts/sdk/inpaint_torch.py): written without zip CRCs and
read memory-mapped, which must change nothing a resume or a predict sees."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts" / "sdk"))
import inpaint_torch  # noqa: E402


def payload() -> dict:
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 3)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(1, 3, 8, 8)).sum().backward()
    optimizer.step()
    rng = np.random.default_rng(3)
    return {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": inpaint_torch.rng_state(rng),
        "step": 1,
    }


def test_a_checkpoint_reads_back_equal(tmp_path: Path) -> None:
    saved = payload()
    path = tmp_path / "model.pt"
    inpaint_torch.save_checkpoint(path, saved)
    loaded = inpaint_torch.load_checkpoint(path)
    assert loaded["step"] == 1 and loaded["contract_version"] == "1"
    for key, value in saved["model"].items():
        assert torch.equal(loaded["model"][key], value)
    for index, state in saved["optimizer"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(loaded["optimizer"]["state"][index][key], state[key])
    assert loaded["rng"]["numpy"] == saved["rng"]["numpy"]


def test_changing_a_loaded_tensor_in_place_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    # a resumed Adam updates its loaded state in place: the mapping must be private
    path = tmp_path / "model.pt"
    inpaint_torch.save_checkpoint(path, payload())
    first = inpaint_torch.load_checkpoint(path)
    before = first["optimizer"]["state"][0]["exp_avg"].clone()
    first["optimizer"]["state"][0]["exp_avg"].add_(1.0)
    again = inpaint_torch.load_checkpoint(path)
    assert torch.equal(again["optimizer"]["state"][0]["exp_avg"], before)


def test_saving_leaves_torch_computing_crcs_for_other_files(tmp_path: Path) -> None:
    inpaint_torch.save_checkpoint(tmp_path / "model.pt", payload())
    assert torch.serialization.get_crc32_options() is True
    torch.save({"x": torch.ones(3)}, tmp_path / "other.pt")
    with zipfile.ZipFile(tmp_path / "other.pt") as archive:
        assert archive.testzip() is None  # every record's CRC checks out


def test_a_checkpoint_in_torchs_legacy_format_still_loads(tmp_path: Path) -> None:
    # files written before the zip format (or by other tools) cannot be memory-mapped
    path = tmp_path / "old.pt"
    torch.save({**payload(), "contract_version": "1"}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    assert inpaint_torch.load_checkpoint(path)["step"] == 1
