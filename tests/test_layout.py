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
