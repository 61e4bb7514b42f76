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
@pytest.mark.parametrize("command", ["measure", "evaluate", "preprocess", "to-native"])
def test_commands_refuse_a_bad_header_in_one_line_and_write_nothing(
    tmp_path, write_bad_header, capsys: pytest.CaptureFixture[str], command: str, defect: str
) -> None:
    import numpy as np
    from brainmets.io import save_nifti

    from conftest import BAD_HEADERS

    mask = np.zeros((12, 12, 12), np.uint8)
    mask[3:8, 3:8, 3:8] = 1
    good = save_nifti(mask, np.eye(4), tmp_path / "good.nii.gz")
    bad = write_bad_header(good, defect, tmp_path / "bad.nii.gz")
    out = tmp_path / "out"
    argv = {
        "measure": ["measure", str(bad), "--out", str(out / "lesions.tsv")],
        "evaluate": ["evaluate", "--truth", str(good), "--pred", str(bad), "--out", str(out / "evaluation.tsv")],
        "preprocess": ["preprocess", str(bad), "--out-dir", str(out)],
        "to-native": ["to-native", str(bad), "--scan-dir", str(tmp_path), "--out", str(out / "native.nii.gz")],
    }[command]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{bad}: " in error and BAD_HEADERS[defect][1] in error
    assert not out.exists()
