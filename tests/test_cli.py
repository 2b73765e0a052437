"""One command-line dialect: --config files, short-flag aliases and key=value, in every script."""
import runpy
import subprocess
import sys
from dataclasses import asdict

import pytest

from tests.conftest import REPO

SCRIPTS = ["sample.py", "evaluate.py", "train_vqgan.py", "train_transformer.py", "main_job.py", "bench.py",
           "ablation.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_importing_torch(script):
    code = (f"import runpy, sys; sys.argv = ['{script}', '--help']\n"
            f"try:\n    runpy.run_path('scripts/{script}', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "key=value" in result.stdout and "--config" in result.stdout


def script_config(script: str, argv: list[str]):
    """The config a script would run with, parsed exactly as its main() parses it."""
    from vqgan.cli import config_parser, load_script_config

    scope = runpy.run_path(str(REPO / "scripts" / script))
    schema = next(v for k, v in scope.items() if k.endswith("Config") and k not in ("SamplingConfig", "EvalConfig"))
    return load_script_config(schema, config_parser(None, scope.get("ALIASES", ())).parse_args(argv))


def test_short_flags_are_aliases_of_schema_keys():
    flags = script_config("sample.py", ["--model", "m", "--num", "5", "--classes", "0,3", "--cfg", "0",
                                        "--top-k", "7", "--seed", "3"])
    keys = script_config("sample.py", ["model=m", "num=5", "classes=[0,3]", "cfg_scale=0", "top_k=7", "seed=3"])
    assert asdict(flags) == asdict(keys)  # each run_path defines its own class
    assert (keys.num, keys.classes, keys.cfg_scale, keys.top_k, keys.seed) == (5, [0, 3], 0.0, 7, 3)
    # key=value is applied after the flags, so it wins
    assert script_config("sample.py", ["--num", "5", "num=6"]).num == 6


def test_evaluate_switch_and_sampling_knobs():
    config = script_config("evaluate.py", ["--tokenizer", "t", "--no-labels", "--fid-weights", "off", "--top-p", "0.9"])
    assert (config.use_labels, config.fid_weights, config.top_p) == (False, "off", 0.9)


def test_config_files_merge_in_order(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("num: 5\nseed: 1\n")
    second.write_text("seed: 2\n")
    config = script_config("sample.py", ["--config", str(first), "--config", str(second)])
    assert (config.num, config.seed) == (5, 2)


@pytest.mark.parametrize("argv, message", [
    (["--cfg", "-1"], "cfg_scale' must be >= 0"),
    (["top_kk=3"], "did you mean 'top_k'"),
    (["--num", "many"], "num"),
])
def test_bad_values_stop_in_one_line(argv, message):
    result = subprocess.run([sys.executable, "scripts/sample.py", "--model", "data/pretrained/emoji32", *argv],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr
