"""Rule stage_config (Snakemake's `script:`): write results/config/<stage>.yaml, the sections one stage reads.

Snakemake runs it with a `snakemake` object (params.sections, output, log). A fault such as a full disk
ends the job with one line in its log, as the `brainmets` commands do, instead of a traceback.
"""

import sys
from contextlib import redirect_stderr
from typing import Any

from brainmets.cli import report_errors
from brainmets.config import write_stage_config


def main(job: Any) -> int:
    """Write the job's stage configuration; returns the exit status (errors as one line in the job's log)."""
    with open(job.log[0], "w") as log, redirect_stderr(log):
        return report_errors("stage_config", lambda: write_stage_config(job.params.sections, job.output[0]))


if __name__ == "__main__":
    sys.exit(main(globals()["snakemake"]))
