"""The command line runs the main job and explains its plan."""

from actors.cli import main


def test_run_prints_results_and_task_metrics(capsys, ray_instance):
    assert main(["run", "--rows", "20000", "--linger-ms", "1"]) == 0
    out = capsys.readouterr().out
    assert "20000 detections in" in out and "ray executor" in out
    assert "district_fusion" in out
    task_lines = [line.split() for line in out.splitlines() if line.startswith(("cameras[0]", "district_fusion[0]"))]
    assert [line[0] for line in task_lines] == ["cameras[0]", "district_fusion[0]"]
    assert task_lines[0][1] == "20,000"  # rows the camera source read


def test_run_inline(capsys):
    assert main(["run", "--rows", "5000", "--executor", "inline"]) == 0
    assert "5000 detections in" in capsys.readouterr().out


def test_explain_prints_plan(capsys):
    assert main(["explain", "--parallelism", "2"]) == 0
    out = capsys.readouterr().out
    assert "hash(district)" in out and "x2" in out
