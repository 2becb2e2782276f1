"""P1: would a faster CPU inference engine lower the LPIPS trunk floor? The metrics image's trunk
(lpips' alexnet slices, as `LPIPSScorer.trunk` runs them: uint8 channels-last in, five
activations out) under torch and under ONNX Runtime, one thread each, as the scorer's pool runs
it.

    pip install onnxruntime onnx      # not in the project's environments: this question only
    python benchmarks/p1_trunk_engine.py [--rounds 5] [--batch 8] [--size 256]

The trunk is exported once (torch's TorchScript-based exporter, opset 17, dynamic batch and
size). Per round the two engines alternate (the order flips each round) over the same batches;
CPU seconds per image (`time.process_time`, one thread), medians over the rounds. Also written:
the largest difference between the engines' activations (the scorer's values must stay within
1e-5 of lpips) and the trunk's multiply-adds per image (from its convolutions' shapes), so that
the rate each engine reaches can be set against the core's peak. Results in
benchmarks/results/p1_trunk_engine.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, write_result

sys.path.insert(0, str(REPO / "images" / "metrics"))


def trunk_module(scorer: Any) -> Any:
    """The scorer's trunk as one module (input: uint8 N×H×W×3), for the exporter."""
    import torch

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = scorer.model

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            return tuple(self.model.net.forward(self.model.scaling_layer(x)))

    return Trunk().eval()


def multiply_adds(module: Any, size: int) -> int:
    """Multiply-adds of the trunk's convolutions for one size×size image (the rest is small)."""
    import torch

    total = 0

    def count(conv: torch.nn.Conv2d, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        k = conv.kernel_size[0] * conv.kernel_size[1] * conv.in_channels // conv.groups
        total += output[0].numel() * k

    hooks = [
        m.register_forward_hook(count) for m in module.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.inference_mode():
        module(torch.zeros(1, size, size, 3, dtype=torch.uint8))
    for hook in hooks:
        hook.remove()
    return total


def cpu_seconds_per_image(run: Any, batches: list[np.ndarray]) -> float:
    start = time.process_time()
    for batch in batches:
        run(batch)
    return (time.process_time() - start) / sum(len(b) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("needs ONNX Runtime: pip install onnxruntime onnx")
    import torch
    from lpips_scorer import LPIPSScorer

    torch.set_num_threads(1)
    # Random trunk weights: the engines' speed and agreement do not depend on the values.
    scorer = LPIPSScorer(device="cpu", allow_random_backbone=True)
    module = trunk_module(scorer)
    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size, 3)
    batches = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(args.batches)]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trunk.onnx"
        dims = {0: "n", 1: "h", 2: "w"}
        torch.onnx.export(
            module,
            (torch.from_numpy(batches[0]),),
            str(path),
            input_names=["x"],
            dynamic_axes={"x": dims},
            opset_version=17,
            dynamo=False,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def with_torch(batch: np.ndarray) -> tuple[Any, ...]:
        with torch.inference_mode():
            return scorer.trunk(torch.from_numpy(batch))

    def with_ort(batch: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {"x": batch})

    largest = max(
        float(np.abs(a.numpy() - b).max() / max(np.abs(a.numpy()).max(), 1e-12))
        for batch in batches[:2]
        for a, b in zip(with_torch(batch), with_ort(batch), strict=True)
    )
    engines = {"torch": with_torch, "onnxruntime": with_ort}
    times: dict[str, list[float]] = {name: [] for name in engines}
    for round_index in range(args.rounds):
        order = list(engines) if round_index % 2 == 0 else list(reversed(engines))
        for name in order:
            times[name].append(cpu_seconds_per_image(engines[name], batches))
        print(
            f"round {round_index + 1}: "
            + ", ".join(f"{n} {times[n][-1] * 1e3:.2f} ms" for n in engines)
        )

    macs = multiply_adds(module, args.size)
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in median.items():
        print(
            f"{name}: {seconds * 1e3:.2f} CPU ms per image, {2 * macs / seconds / 1e9:.0f} GFLOP/s"
        )
    speedup = median["torch"] / median["onnxruntime"]
    print(f"onnxruntime vs torch: {speedup:.2f}×; largest relative difference {largest:.1e}")
    measurements = {
        "size": args.size,
        "batch": args.batch,
        "images_per_round": args.batch * args.batches,
        "threads": 1,
        "onnxruntime": ort.__version__,
        "multiply_adds_per_image": macs,
        "cpu_s_per_image": times,
        "median_cpu_ms_per_image": {n: round(s * 1e3, 3) for n, s in median.items()},
        "gflops_per_s": {n: round(2 * macs / s / 1e9, 1) for n, s in median.items()},
        "onnxruntime_vs_torch": round(speedup, 3),
        "largest_relative_difference": largest,
    }
    write_result(
        "p1_trunk_engine", measurements, {"onnxruntime lowers the trunk floor": speedup > 1.1}
    )


if __name__ == "__main__":
    main()
