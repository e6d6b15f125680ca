"""The committed Python stubs are what grpcio-tools makes of the .proto files now."""

import shutil
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent.parent
PROTOS = sorted((ROOT / "protos" / "citystream" / "v1").glob("*.proto"))


def test_generated_stubs_are_not_stale(tmp_path, monkeypatch):
    copy = tmp_path / "protos" / "citystream" / "v1"
    copy.mkdir(parents=True)
    for proto in PROTOS:
        shutil.copy(proto, copy)
    monkeypatch.chdir(tmp_path)
    relative = [str(p.relative_to(ROOT)) for p in PROTOS]
    include = str(Path(protoc.__file__).parent / "_proto")
    assert protoc.main(["protoc", "-I.", f"-I{include}", "--python_out=.", "--grpc_python_out=.", "--pyi_out=.", *relative]) == 0
    generated = sorted(p.name for p in copy.iterdir() if p.suffix in (".py", ".pyi"))
    assert generated, "protoc made nothing"
    for name in generated:
        committed = ROOT / "protos" / "citystream" / "v1" / name
        assert committed.exists(), f"{name} is not committed: run `make protos`"
        assert committed.read_text() == (copy / name).read_text(), f"{name} is stale: run `make protos`"
