"""Print the configuration reference (every key, its default and its note) as Markdown.

    python scripts/config_reference.py            # print
    python scripts/config_reference.py --check    # fail if README.md's copy differs

The notes are the comments beside each field in the dataclass schemas.
"""
import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from transformer.main_job import MainJobConfig  # noqa: E402
from transformer.train_config import GPTTrainConfig  # noqa: E402
from vqgan.train_config import VQGANTrainConfig  # noqa: E402

SCHEMAS = [("Stage 1: `scripts/train_vqgan.py`", VQGANTrainConfig),
           ("Stage 2: `scripts/train_transformer.py`", GPTTrainConfig),
           ("Main job: `scripts/main_job.py`", MainJobConfig)]
BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def field_notes(cls) -> dict[str, str]:
    notes = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            for match in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(klass), re.M):
                notes[match.group(1)] = match.group(2).strip()
    return notes


def rows(instance, prefix: str = ""):
    notes = field_notes(type(instance))
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            yield from rows(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, notes.get(f.name, "")


def reference() -> str:
    parts = []
    for title, schema in SCHEMAS:
        parts += [f"#### {title}", "", "| key | default | note |", "|---|---|---|"]
        parts += [f"| `{key}` | `{value!r}` | {note.replace('|', '/')} |" for key, value, note in rows(schema())]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with README.md instead of printing")
    parser.add_argument("--write", action="store_true", help="replace the section in README.md")
    args = parser.parse_args()
    text = reference()
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if args.check or args.write:
        content = readme.read_text()
        start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
        if args.write:
            readme.write_text(content[:start] + "\n" + text + content[end:])
        elif content[start:end].strip() != text.strip():
            sys.exit("README.md's configuration reference is out of date: run python scripts/config_reference.py --write")
        return
    print(text)


if __name__ == "__main__":
    main()
