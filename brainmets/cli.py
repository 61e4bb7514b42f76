"""The `brainmets` command: one subcommand per stage of the pipeline.

Each subcommand lives in its own module, which exposes ``HELP`` (one line), ``configure(parser)``
and ``run(args)``. Modules import heavy libraries (TensorFlow, ANTs, torch) inside ``run`` only,
so ``brainmets --help`` stays fast, and ``brainmets COMMAND`` imports COMMAND's module alone.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from brainmets import __version__
from brainmets.errors import BrainmetsError

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
    "evaluate": "brainmets.evaluation.cli_evaluate",
    "evaluate-cohort": "brainmets.evaluation.cli_evaluate_cohort",
    "dicom-export": "brainmets.dicom.cli_dicom_export",
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # a job runs one command: importing the other commands' modules cost every job 1-1.5 s (AVX2 EPYC)
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(named if named in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "config", None):  # every --config file against the one schema, before any work
            from brainmets.config import check_config_file

            check_config_file(args.config)
        args._run(args)
    except BrainmetsError as error:
        print(f"brainmets {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"brainmets {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
