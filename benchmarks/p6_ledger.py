"""P6 the ledger as the harness's single writer: how many writes a second it takes, for
docs/scaling.md's question of where the harness itself would become the bottleneck.

    .venv/bin/python benchmarks/p6_ledger.py

Measured on a fresh ledger in a temporary folder on this machine's disk:
- event writes (`add_event`: one transaction each, WAL, synchronous=FULL), from one thread and
  from two threads at once (the slot threads share one connection under a lock);
- step begin + finish pairs;
- `put_scores` of one score step's rows (300 images × 2 variants × 8 metrics), and reading every
  score row back (`score_rows`, what the report loads) for 24 such steps.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import report_targets, write_result

from harness.ledger import Ledger

EVENTS = 2000
METRICS = ["psnr", "ssim", "ssim_gauss", "lpips", "psnr_hole", "l1_hole", "known_pixel_dev", "x"]


def events_per_s(ledger: Ledger, threads: int) -> float:
    def writer(name: str) -> None:
        attempt = ledger.begin(name, "train", name, {})
        for seq in range(EVENTS // threads):
            ledger.add_event(name, attempt, seq, {"event": "progress", "step": seq, "time": 0.0})

    workers = [threading.Thread(target=writer, args=(f"t{threads}-{i}",)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return EVENTS / (time.perf_counter() - start)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="p6-ledger-", dir=Path.cwd()))
    try:
        load = os.getloadavg()
        with Ledger.in_run_dir(work) as ledger:
            one = events_per_s(ledger, 1)
            two = events_per_s(ledger, 2)
            start = time.perf_counter()
            for i in range(500):
                ledger.begin(f"s{i}", "predict", f"s{i}", {"i": i})
                ledger.finish(f"s{i}", "done", result={"i": i})
            steps_per_s = 500 / (time.perf_counter() - start)
            rows = [
                {"image": f"{i:06d}.png", "variant": v, "hole_fraction": 0.1, "bin": "0-10"}
                | {m: 1.0 for m in METRICS}
                for i in range(300)
                for v in ("composite", "raw")
            ]
            start = time.perf_counter()
            for i in range(24):
                ledger.begin(f"score{i}", "score", f"score{i}", {})
                ledger.put_scores(
                    f"score{i}", {"source": "s", "model": f"m{i}", "test_set": "t"}, rows, METRICS
                )
                ledger.finish(f"score{i}", "done", result={})
            put_s = (time.perf_counter() - start) / 24
            start = time.perf_counter()
            read = len(ledger.score_rows())
            read_s = time.perf_counter() - start
        measurements: dict[str, Any] = {
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "events_per_s_one_thread": round(one, 1),
            "events_per_s_two_threads": round(two, 1),
            "step_begin_finish_per_s": round(steps_per_s, 1),
            "put_scores_s_per_step": round(put_s, 4),
            "rows_per_score_step": len(rows) * len(METRICS),
            "score_rows_read": read,
            "score_rows_read_s": round(read_s, 3),
        }
        for key, value in measurements.items():
            print(f"{key}: {value}")
        print(write_result("p6_ledger", measurements, {}))
        report_targets({})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
