"""MADF end to end with the local runner: train on a budget, predict, describe (128 px, batch 1).

No torch in this process: the adapter runs in the model environment (the local runner's venv for
images/madf/requirements.txt), with the authors' code from $INPAINT_UPSTREAM_MADF and seeded
random VGG16 weights (INPAINT_RANDOM_LOSS_WEIGHTS=1), so the numbers it trains mean nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from adapters import REPO, upstream_checkout
from PIL import Image
from runs import tiny_run_profile

from harness import describing, pipeline
from harness.config import ModelEntry
from harness.progress import SilentReporter
from harness.runners.local import LocalRunner


class RandomVggRunner(LocalRunner):
    """The local runner drops the parent's INPAINT_* variables; pass the random-VGG switch on."""

    def start(self, launch):
        env = {**launch.env, "INPAINT_RANDOM_LOSS_WEIGHTS": "1"}
        return super().start(dataclasses.replace(launch, env=env))


@pytest.mark.slow
@pytest.mark.upstream
def test_local_run_random_vgg_trains_predicts_and_composites(tmp_path: Path, monkeypatch) -> None:
    source = upstream_checkout("madf")
    # The harness describes at the run's size and at 256 px with timed forwards: minutes for
    # MADF on a busy CPU. The run's 128 px only, untimed.
    describe_job = describing.describe_job

    def small_describe_job(*args, **kwargs):
        doc = describe_job(*args, **kwargs, reference_sizes=())
        return {**doc, "image_size": 128, "measure_latency": False}

    monkeypatch.setattr(describing, "describe_job", small_describe_job)
    model = ModelEntry(
        name="madf", image=str(REPO / "images" / "madf"), batch_size=1, train_budget_s=8.0
    )
    # grace: MADF finishes its step and writes a ~1 GB checkpoint (G + Adam) after the budget
    profile = tiny_run_profile(tmp_path, [model], size=128, setup_cap_s=600.0, grace_s=120.0)
    reporter = SilentReporter(quiet=True)
    runner = RandomVggRunner(upstream_src={"madf": source}, reporter=reporter)
    summary = pipeline.Pipeline(profile, tmp_path / "run", runner, reporter).run()

    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    steps = {f"{s.kind} {s.label}": s for s in summary.steps}
    train = steps["train madf on scenes"]
    assert train.result["steps"] > 0, train.result
    predict = steps["predict madf (scenes) on faces_test"]
    assert predict.result["composites"] is True
    out = tmp_path / "run" / "predictions" / "scenes" / "madf" / "faces_test"
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(4)]
    for f in files:
        with Image.open(f) as image:
            assert image.mode == "RGB" and image.size == (128, 128)
            assert np.asarray(image).std() > 0
    describe = steps["describe madf"].result["describe"]
    assert describe["parameters"]["generator"] == 85_141_214  # upstreams.md §MADF-8
    assert describe["parameters"]["discriminator"] is None
    assert describe["flops"]["image_size"] == 128 and describe["flops"]["forward_flops"] > 0
    assert describe["parameters"]["other"] == {"vgg16_features_loss": 1_735_488}
