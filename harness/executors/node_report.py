"""The report as a Slurm job: build RUN_DIR/report/ on a node from the run folder.

The job may start as soon as the last score job has ended (`--dependency=afterok`), before the
login-node harness has put that job's rows into the ledger: it waits for the harness's ready
file first. The report reads the ledger read-only (harness/report/rundata.py), so the harness
stays its only writer; the exit file carries the report's path and main tables back to it.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from harness.data.atomic import atomic_write_text
from harness.errors import HarnessError

READY_POLL_S = 1.0  # a file on the shared filesystem: not more often


def job_id() -> dict[str, str | None]:
    """For every exit file: a rerun adopts an ended job by this ID."""
    return {"job_id": os.environ.get("SLURM_JOB_ID")}


def report_main(spec: dict[str, Any]) -> int:
    from harness.report.build import build_report  # pandas: only this job needs it

    exit_file = Path(spec["exit"])
    ready = Path(spec["report"]["ready"])
    while not ready.exists():  # bounded by the job's time limit (REPORT_MIN)
        time.sleep(READY_POLL_S)
    try:
        result = build_report(Path(spec["report"]["run_dir"]))
    except Exception as error:
        traceback.print_exc()  # into the Slurm job's --output file
        message = str(error) if isinstance(error, HarnessError) else repr(error)
        failed = {"exit_code": 1, "error": message} | job_id()
        atomic_write_text(exit_file, json.dumps(failed) + "\n")
        return 1
    done = {"exit_code": 0, "path": str(result.path), "main_markdown": result.main_markdown}
    done |= job_id()
    atomic_write_text(exit_file, json.dumps(done) + "\n")
    return 0
