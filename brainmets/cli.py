"""The `brainmets` command: one subcommand per stage of the pipeline.

Each subcommand lives in its own module, which exposes ``HELP`` (one line), ``configure(parser)``
and ``run(args)``. Modules import heavy libraries (TensorFlow, ANTs, torch) inside ``run`` only,
so ``brainmets --help`` stays fast, and ``brainmets COMMAND`` imports COMMAND's module alone.

Errors reach the user here, as one line and an exit status, for every command alike: bad input
(BrainmetsError, status 2) and faults of the machine while reading or writing (StorageError, or any
OSError or library error wrapping one, status 1; see brainmets.errors). Anything else is a bug and
shows its traceback; `--debug` (or BRAINMETS_DEBUG=1) shows the traceback of every error.
TensorFlow's start-up chatter is kept off the terminal unless `--verbose` (brainmets.terminal).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from brainmets import __version__
from brainmets.errors import BrainmetsError, debug_requested, storage_error
from brainmets.terminal import clear_stage, quiet_tensorflow_startup

#: subcommand name -> module that implements it
COMMANDS: dict[str, str] = {
    "demo-cohort": "brainmets.demo.cli_demo_cohort",
    "check-samples": "brainmets.samplesheet",
    "convert-dicom": "brainmets.dicom.cli_convert",
    "dicom-sheet": "brainmets.dicom.sheet",
    "preprocess": "brainmets.preprocess.cli_preprocess",
    "to-native": "brainmets.preprocess.cli_to_native",
    "weight-map": "brainmets.train.cli_weight_map",
    "prepare-case": "brainmets.train.cli_prepare_case",
    "train": "brainmets.train.cli_train",
    "finalise-model": "brainmets.train.cli_finalise_model",
    "import-model": "brainmets.train.cli_import_model",
    "predict": "brainmets.inference.cli_predict",
    "segment": "brainmets.inference.cli_segment",
    "measure": "brainmets.rano.cli_measure",
    "track": "brainmets.track.cli_track",
    "rano": "brainmets.rano.cli_rano",
    "review-page": "brainmets.review.cli_review_page",
    "evaluate": "brainmets.evaluation.cli_evaluate",
    "evaluate-cohort": "brainmets.evaluation.cli_evaluate_cohort",
    "dicom-export": "brainmets.export.cli_dicom_export",
    "dicomweb-fetch": "brainmets.dicom.cli_fetch",
    "send": "brainmets.dicom.cli_send",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand, or with only the one named `only` (whose module alone is imported)."""
    parser = argparse.ArgumentParser(
        prog="brainmets",
        description="Brain-metastasis segmentation, uncertainty, tracking and RANO-BM response.",
    )
    parser.add_argument("--version", action="version", version=f"brainmets {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the Python traceback of any error (also: environment variable BRAINMETS_DEBUG=1)",
    )
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also show TensorFlow's own start-up and library log (also: TF_CPP_MIN_LOG_LEVEL=0)",
    )
    for action in common._actions:
        parser._add_action(action)  # before or after COMMAND alike
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def report_errors(name: str, work: Callable[[], object], debug: bool = False) -> int:
    """Run `work`, ending an error in one line on stderr; returns the exit status (0 ok, 1 fault, 2 bad input).

    The one place where errors reach the user: every command goes through it (and so do the workflow's
    scripts). A bug, or any error when `debug` or BRAINMETS_DEBUG asks for it, keeps its traceback.
    """
    try:
        work()
    except KeyboardInterrupt:
        clear_stage()
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        fault = storage_error(error)
        if debug or debug_requested() or (fault is None and not isinstance(error, BrainmetsError)):
            raise  # a bug, or the user asked for tracebacks
        clear_stage()
        print(f"{name}: error: {fault or error}", file=sys.stderr)
        return 2 if fault is None else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 1 fault of the machine, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # before any module imports TensorFlow: its C++ start-up log stays off the terminal unless asked for
    quiet_tensorflow_startup(verbose="--verbose" in argv)
    # a job runs one command: importing the other commands' modules cost every job 1-1.5 s (AVX2 EPYC)
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(named if named in COMMANDS else None)
    args = parser.parse_args(argv)

    def work() -> None:
        """Check --config, then run the command."""
        if getattr(args, "config", None):  # every --config file against the one schema, before any work
            from brainmets.config import check_config_file

            check_config_file(args.config)
        args._run(args)

    return report_errors(f"brainmets {args.command}", work, getattr(args, "debug", False))


if __name__ == "__main__":
    sys.exit(main())
