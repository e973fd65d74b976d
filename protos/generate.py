"""Generate the Python code for the contracts into `engage/v1/`.

`python protos/generate.py` rewrites the generated modules; `--check` regenerates into a
temporary folder and exits 1 if the committed code differs (CI runs this).
"""

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_DIR = Path("engage/v1")


def generate(out_dir: Path) -> None:
    """Run protoc over every contract, writing modules and type stubs under `out_dir`."""
    well_known = resources.files("grpc_tools") / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE_DIR).glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*_pb2*.py*")}


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = Path(tmp) / PACKAGE_DIR, ROOT / PACKAGE_DIR
        names = generated_files(fresh) | generated_files(committed)
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, sorted(names), shallow=False)
        stale = mismatch + errors
    if stale:
        print("generated code differs from protos/: " + ", ".join(stale), file=sys.stderr)
        print("run `python protos/generate.py` and commit the result", file=sys.stderr)
        return 1
    print(f"generated code matches protos/ ({len(names)} files)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    if parser.parse_args().check:
        return check()
    generate(ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
