import re
import subprocess
import sys

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_python_block_of_the_readme_runs(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(REPO)  # the blocks use the pretrained model shipped in data/pretrained/
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_starts_with_the_two_commands():
    first_screen = "\n".join(README.splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_configuration_reference_is_in_sync():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "config_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_script_has_help():
    for script in sorted((REPO / "scripts").glob("*.py")):
        result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "usage" in result.stdout, script.name


def readme_script_commands() -> list[tuple[str, list[str]]]:
    """(script, arguments) of every `python scripts/<name>.py ...` line of the README's bash blocks."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#")[0])
            if len(words) >= 2 and words[0] == "python" and words[1].startswith("scripts/"):
                commands.append((words[1].removeprefix("scripts/"), words[2:]))
    return commands


def test_every_readme_command_parses_in_its_scripts_dialect():
    """Each command's --config files, flags and key=value load into the script's schema."""
    import runpy

    from transformer.main_job import MainJobConfig
    from transformer.train_config import GPTTrainConfig
    from vqgan.cli import config_parser, load_script_config
    from vqgan.train_config import VQGANTrainConfig

    schemas = {"train_vqgan.py": VQGANTrainConfig, "train_transformer.py": GPTTrainConfig,
               "main_job.py": MainJobConfig}
    commands = [(s, a) for s, a in readme_script_commands() if not s.startswith(("prepare_", "convert_"))]
    assert len(commands) >= 8
    for script, args in commands:
        scope = {} if script in schemas else runpy.run_path(str(REPO / "scripts" / script))
        schema = schemas.get(script) or next(v for k, v in scope.items() if k.endswith("ScriptConfig")
                                             or k in ("BenchConfig", "AblationConfig"))
        parsed = config_parser(None, scope.get("ALIASES", ())).parse_args(args)
        load_script_config(schema, parsed)  # exits with the error on a bad key or value
