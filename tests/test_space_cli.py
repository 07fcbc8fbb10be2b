"""`nasforge space list | show | sample`, run in-process through the CLI's `main` and once as
the installed console script; and the stage-table diagram other spaces draw with."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasforge.platform.cli import main
from nasforge.search_spaces import list_spaces
from nasforge.search_spaces.diagrams import draw_stage_table

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # the in-process `space sample` runs share 2 cores with other work


def test_space_list_names_every_registered_space_with_size_and_description(capsys):
    assert main(["space", "list"]) == 0
    out = capsys.readouterr().out
    for name in list_spaces():
        assert name in out
    assert "NASNet normal + reduction cells" in out
    assert "3.27e+30" in out  # nasnet's size with the default 5 blocks and 9 ops


def test_space_show_lists_dimensions_kinds_ranges_and_size(capsys):
    assert main(["space", "show", "nasnet", "--set", "blocks=2"]) == 0
    out = capsys.readouterr().out
    assert "16 dimensions" in out
    assert "normal/block1/input1" in out and "reduce/block0/op0" in out
    assert "categorical" in out and "0, 1, 2" in out  # block1 reads h(i-2), h(i-1) or block0
    assert main(["space", "show", "hparams"]) == 0
    out = capsys.readouterr().out
    assert "hp/lr" in out and "log" in out and "when {'hp/optimizer': 'sgd'}" in out


def test_unknown_space_is_one_line_and_exit_2(capsys):
    assert main(["space", "show", "nasnett"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown space 'nasnett'" in err[0] and "nasnet" in err[0].split("valid:")[1]
    assert main(["space", "sample", "nope"]) == 2
    assert main(["space", "sample", "nasnet", "--input", "3x32"]) == 2
    assert "is not CxHxW" in capsys.readouterr().err
    assert main(["space", "show", "nasnet", "--set", "blocks=0"]) == 2
    assert "nasnet.blocks must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_space_sample_builds_runs_and_tabulates_params_and_flops(tmp_path, capsys):
    draw = tmp_path / "pictures"
    rc = main(["space", "sample", "nasnet", "--n", "2", "--seed", "1", "--set", "C=8",
               "--draw", str(draw)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 random samples of nasnet" in out and "params" in out and "MFLOPs" in out
    assert out.count("ok, drew 2 files") == 2
    files = sorted(p.name for p in draw.iterdir())
    assert files == ["sample0.png", "sample0.svg", "sample1.png", "sample1.svg"]
    assert all((draw / f).stat().st_size > 0 for f in files)
    # same seed, same samples: the table repeats itself (keys, params, FLOPs)
    assert main(["space", "sample", "nasnet", "--n", "2", "--seed", "1", "--set", "C=8"]) == 0
    again = capsys.readouterr().out
    rows = [line.split("│")[1:5] for line in out.splitlines() if line.startswith("│")]
    rows_again = [line.split("│")[1:5] for line in again.splitlines() if line.startswith("│")]
    assert rows == rows_again and len(rows) == 2
    # digits-sized inputs build too
    assert main(["space", "sample", "nasnet", "--n", "1", "--input", "1x8x8", "--set", "C=4"]) == 0
    capsys.readouterr()


def test_space_sample_of_a_space_without_network_lists_samples(capsys):
    assert main(["space", "sample", "hparams", "--n", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("ok (no network)") == 3


@pytest.mark.slow
def test_space_sample_exits_non_zero_naming_the_failing_samples(capsys):
    if "nb201" not in list_spaces():
        pytest.skip("the nb201 space is not in this checkout")
    # NAS-Bench-201's residual reduction block average-pools 2x2: a 1x1 input cannot build.
    assert main(["space", "sample", "nb201", "--n", "2", "--input", "3x1x1"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith("nasforge: sample ")]
    assert len(failed) == 2 and "failed (|" in failed[0]  # names the sample by its cell string


def test_console_script_space_list_runs_as_a_real_process():
    exe = REPO / ".venv" / "bin" / "nasforge"
    if not exe.exists():
        exe = Path(sys.executable).with_name("nasforge")
    res = subprocess.run([str(exe), "space", "list"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "nasnet" in res.stdout and "hparams" in res.stdout
    res = subprocess.run([str(exe), "space", "show", "nope"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("nasforge: error: unknown space 'nope'")


def test_space_list_does_not_import_torch():
    code = ("import sys; from nasforge.platform.cli import main; main(['space', 'list']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("NO-TORCH"), res.stdout[-300:]


def test_draw_stage_table_writes_png_and_svg(tmp_path):
    from PIL import Image

    files = draw_stage_table(["stage", "blocks", "dilation"], [["1", "2", "1"], ["2", "2", "2"], ["3", "3", "1"]],
                             str(tmp_path / "sub" / "table"), "reallocation")
    assert files == [str(tmp_path / "sub" / "table.png"), str(tmp_path / "sub" / "table.svg")]
    assert all(Path(f).stat().st_size > 1000 for f in files)
    with Image.open(files[0]) as img:
        assert img.size[0] > img.size[1] > 50
    with pytest.raises(ValueError, match="row 1 has 2 cells, the header has 3"):
        draw_stage_table(["a", "b", "c"], [["1", "2", "3"], ["1", "2"]], str(tmp_path / "bad"), "t")
