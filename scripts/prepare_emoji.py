"""Rebuild data/emoji/ from the npm package emoji-datasource-google@16.0.0.

The bundled dataset was made with this script; run it to check its provenance:

    npm pack emoji-datasource-google@16.0.0
    python scripts/prepare_emoji.py emoji-datasource-google-16.0.0.tgz --out data/emoji

Each 64x64 RGBA PNG under package/img/google/64/ is composited on white and saved
as RGB in a subfolder named after its category (package/emoji.json; the 5 images of
"Component" go to "Symbols"), so the image-folder loader reads them with labels.
"""
import argparse
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

from PIL import Image

IMAGE_DIR = "package/img/google/64/"
FOLDED_CATEGORIES = {"Component": "Symbols"}


def folder_name(category: str) -> str:
    """'People & Body' -> 'people_body'."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def image_categories(emoji_json: list[dict]) -> dict[str, str]:
    """Image file name -> category, skin-tone variants included."""
    categories = {}
    for entry in emoji_json:
        category = FOLDED_CATEGORIES.get(entry["category"], entry["category"])
        categories[entry["image"]] = category
        for variant in (entry.get("skin_variations") or {}).values():
            categories[variant["image"]] = category
    return categories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tarball", type=Path, help="emoji-datasource-google-16.0.0.tgz from `npm pack`")
    parser.add_argument("--out", type=Path, default=Path("data/emoji"), help="output folder")
    args = parser.parse_args()

    with tarfile.open(args.tarball) as tar:
        emoji_json = json.load(tar.extractfile("package/emoji.json"))
        categories = image_categories(emoji_json)
        members = {m.name[len(IMAGE_DIR):]: m for m in tar.getmembers() if m.name.startswith(IMAGE_DIR)}
        missing = sorted(set(categories) - set(members))
        if missing:
            raise SystemExit(f"{len(missing)} images listed in emoji.json are not in the tarball, e.g. {missing[:3]}")
        for sub in args.out.glob("*/"):
            shutil.rmtree(sub)
        for name, category in sorted(categories.items()):
            rgba = Image.open(io.BytesIO(tar.extractfile(members[name]).read())).convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
            target = args.out / folder_name(category) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            rgb.save(target, optimize=True)
    print(f"wrote {len(categories)} images in {len(set(categories.values()))} folders under {args.out}")


if __name__ == "__main__":
    main()
