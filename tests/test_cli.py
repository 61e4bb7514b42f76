"""The `brainmets` command line: every registered subcommand loads and explains itself."""

import pytest
from brainmets.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: brainmets {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert all(command in listing for command in COMMANDS)


@pytest.mark.parametrize("defect", ["zero-spacing-qform", "negative-spacing", "nan-spacing", "singular-affine"])
@pytest.mark.parametrize(
    "command", ["measure", "evaluate", "preprocess", "to-native", "weight-map", "prepare-case", "track", "predict"]
)
def test_commands_refuse_a_bad_header_in_one_line_and_write_nothing(
    tmp_path, write_bad_header, request, capsys: pytest.CaptureFixture[str], command: str, defect: str
) -> None:
    """README: every command refuses a header with a zero, negative, NaN or infinite spacing or a singular affine."""
    import numpy as np
    from brainmets.io import save_nifti

    from conftest import BAD_HEADERS

    mask = np.zeros((12, 12, 12), np.uint8)
    mask[3:8, 3:8, 3:8] = 1
    good = save_nifti(mask, np.eye(4), tmp_path / "good.nii.gz")
    bad = write_bad_header(good, defect, tmp_path / "bad.nii.gz")
    out = tmp_path / "out"
    (tmp_path / "manifest.tsv").write_text(f"timepoint\tmask\n2024-01-01\t{good}\n2024-03-01\t{bad}\n")
    argv = {
        "measure": ["measure", str(bad), "--out", str(out / "lesions.tsv")],
        "evaluate": ["evaluate", "--truth", str(good), "--pred", str(bad), "--out", str(out / "evaluation.tsv")],
        "preprocess": ["preprocess", str(bad), "--out-dir", str(out)],
        "to-native": ["to-native", str(bad), "--scan-dir", str(tmp_path), "--out", str(out / "native.nii.gz")],
        "weight-map": ["weight-map", "--label", str(bad), "--out", str(out / "weights.nii.gz")],
        "prepare-case": ["prepare-case", "--image", str(good), "--label", str(bad), "--out-dir", str(out)],
        "track": ["track", str(tmp_path / "manifest.tsv"), "--out", str(out)],
        "predict": [
            "predict",
            *("--image", str(bad), "--brain-mask", str(good), "--out-dir", str(out)),
            *("--model", str(request.getfixturevalue("tiny_model_dir")) if command == "predict" else "unused"),
        ],
    }[command]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{bad}: " in error and BAD_HEADERS[defect][1] in error
    assert not out.exists()
