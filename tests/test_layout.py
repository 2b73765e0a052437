import subprocess
import sys


def test_library_imports_without_lightning():
    code = ("import sys, vqgan, transformer; "
            "assert not any(m.startswith(('pytorch_lightning', 'lightning')) for m in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_vqgan_never_imports_transformer():
    from tests.conftest import REPO

    for path in (REPO / "vqgan").glob("*.py"):
        text = path.read_text()
        assert "import transformer" not in text and "from transformer" not in text, path.name


def test_inference_imports_neither_lightning_nor_omegaconf():
    """Load the shipped generator, sample and decode: a user's inference path stays light."""
    code = (
        "import sys, torch; from transformer import generate, load_generator; "
        "gpt, tok = load_generator('data/pretrained/emoji32', 'cpu', torch.float32); "
        "codes = generate(gpt, torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0)); "
        "images = tok.decode(codes); assert images.shape == (2, 3, 32, 32), images.shape; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', 'omegaconf')]; "
        "assert not heavy, heavy"
    )
    from tests.conftest import REPO

    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
