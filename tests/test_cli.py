"""The command line runs the main job and explains its plan."""

from actors.cli import main


def test_run_prints_results(capsys):
    assert main(["run", "--rows", "20000"]) == 0
    out = capsys.readouterr().out
    assert "20000 detections in" in out
    assert "district_fusion" in out


def test_explain_prints_plan(capsys):
    assert main(["explain", "--parallelism", "2"]) == 0
    out = capsys.readouterr().out
    assert "hash(district)" in out and "x2" in out
