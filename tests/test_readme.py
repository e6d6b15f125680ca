"""The README's example pipeline runs and gives what it shows."""

import re
from pathlib import Path


def examples():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_example_runs(capsys):
    namespace: dict = {}
    exec(compile(examples()[0], "README.md", "exec"), namespace)
    check(namespace)


def test_readme_ray_example_gives_the_same_result(ray_instance):
    namespace: dict = {}
    first, on_ray = examples()[:2]
    exec(compile(first, "README.md", "exec"), namespace)
    exec(compile(on_ray, "README.md", "exec"), namespace)
    assert namespace["job"].state == "finished"
    assert set(namespace["job"].tasks) >= {"cameras[0]", "stations[0]", "refused[0]"}
    check(namespace)


def check(namespace):
    counts = namespace["result"].table("counts").sort_by([("window_start", "ascending"), ("camera", "ascending")])
    assert counts.select(["camera", "count", "pm10_max"]).to_pylist() == [
        {"camera": "cam-1", "count": 1, "pm10_max": 35.0},
        {"camera": "cam-2", "count": 1, "pm10_max": 35.0},
        {"camera": "cam-1", "count": 1, "pm10_max": 160.0},
    ]
    assert namespace["result"].table("refused").num_rows == 0
