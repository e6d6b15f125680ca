"""The README's example pipeline runs and gives what it shows."""

import re
from pathlib import Path


def test_readme_example_runs(capsys):
    text = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    counts = namespace["result"].table("counts").sort_by([("window_start", "ascending"), ("camera", "ascending")])
    assert counts.select(["camera", "count", "pm10_max"]).to_pylist() == [
        {"camera": "cam-1", "count": 1, "pm10_max": 35.0},
        {"camera": "cam-2", "count": 1, "pm10_max": 35.0},
        {"camera": "cam-1", "count": 1, "pm10_max": 160.0},
    ]
    assert namespace["result"].table("refused").num_rows == 0
