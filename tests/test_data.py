import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqgan.data import DataConfig, DatasetError, ImageDataModule, ImageFolderDataset, load_rgb, scan_images

REPO = Path(__file__).resolve().parents[1]


def rgba_half_transparent(size=8) -> Image.Image:
    image = Image.new("RGBA", (size, size), (255, 0, 0, 255))
    for x in range(size // 2):
        for y in range(size):
            image.putpixel((x, y), (0, 0, 255, 0))  # fully transparent blue: must become white
    return image


def mode_images() -> dict[str, Image.Image]:
    rgba = rgba_half_transparent()
    palette_transparent = Image.new("P", (8, 8), 0)
    palette_transparent.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_transparent.info["transparency"] = 0
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    return {
        "RGB": Image.new("RGB", (8, 8), (10, 20, 30)),
        "L": Image.new("L", (8, 8), 128),
        "LA": Image.new("LA", (8, 8), (0, 0)),
        "RGBA": rgba,
        "P": rgba.convert("RGB").convert("P"),
        "P_transparent": palette_transparent,
        "CMYK": Image.new("CMYK", (8, 8), (0, 0, 0, 0)),
        "I;16": sixteen,
    }


@pytest.mark.parametrize("name", list(mode_images()))
def test_every_pillow_mode_becomes_rgb(tmp_path, name):
    image = mode_images()[name]
    path = tmp_path / (f"{name.replace(';', '')}.tif" if name == "CMYK" else f"{name.replace(';', '')}.png")
    if name == "CMYK":
        path = tmp_path / "cmyk.jpg"
    image.save(path)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (8, 8)


def test_transparency_is_composited_on_white(tmp_path):
    rgba_half_transparent().save(tmp_path / "a.png")
    pixels = np.asarray(load_rgb(tmp_path / "a.png"))
    assert (pixels[:, :4] == 255).all()  # transparent half: white, not the hidden blue
    assert (pixels[:, 4:] == [255, 0, 0]).all()


def test_palette_transparency_composited_on_white(tmp_path):
    mode_images()["P_transparent"].save(tmp_path / "p.png")
    assert (np.asarray(load_rgb(tmp_path / "p.png")) == 255).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(tmp_path / "g.png")
    value = np.asarray(load_rgb(tmp_path / "g.png"))[0, 0, 0]
    assert 126 <= value <= 129  # half of 65535 is half of 255


def make_folder(root: Path, counts: dict[str, int], size=(12, 10)) -> Path:
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", size, (i * 20 % 255, 0, 0)).save(root / label / f"{i}.png")
    return root


def test_labels_are_sorted_subfolders_and_stable(tmp_path):
    root = make_folder(tmp_path / "d", {"zebra": 2, "apple": 3})
    index = scan_images(root)
    assert index.class_names == ["apple", "zebra"]
    assert [index.labels[i] for i, p in enumerate(index.paths) if "/zebra/" in p] == [1, 1]
    assert scan_images(root) == index


def test_corrupt_files_are_listed_and_skipped_with_one_warning(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3})
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "text.jpg").write_text("not an image")
    good = (root / "a" / "0.png").read_bytes()
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = scan_images(root)
    assert len(index.paths) == 3
    assert sorted(Path(p).name for p in index.unreadable) == ["empty.png", "text.jpg", "truncated.png"]
    assert len([w for w in caught if "skipped 3 unreadable" in str(w.message)]) == 1


def test_decompression_bomb_is_refused(tmp_path):
    root = tmp_path / "d"
    make_folder(root, {"a": 1})
    Image.new("1", (15000, 15000)).save(root / "a" / "bomb.png")  # 225 Mpx: above Pillow's limit
    with pytest.raises(DatasetError, match="bomb.png"):
        load_rgb(root / "a" / "bomb.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [Path(p).name for p in scan_images(root).unreadable] == ["bomb.png"]


def test_empty_folder_and_unreadable_only_folder_fail_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no readable image"):
        scan_images(tmp_path / "empty")
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match="no readable image"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan_images(tmp_path / "bad")
    with pytest.raises(DatasetError, match="not found"):
        scan_images(tmp_path / "missing")


def test_images_outside_class_folders_are_an_error_with_labels(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 1})
    Image.new("RGB", (8, 8)).save(root / "loose.png")
    with pytest.raises(DatasetError, match="loose.png"):
        scan_images(root)
    assert len(scan_images(root, use_labels=False).paths) == 2


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    index = scan_images(make_folder(tmp_path / "d", {"a": 30, "b": 20}))
    train, val = index.split(0.2, seed=0)
    assert index.split(0.2, seed=0) == (train, val)
    assert index.split(0.2, seed=1) != (train, val)
    assert len(val) == 10 and not set(train) & set(val) and sorted(train + val) == list(range(50))


def test_items_are_float_tensors_in_range_with_crop(tmp_path):
    index = scan_images(make_folder(tmp_path / "d", {"a": 2}, size=(6, 5)))  # smaller than the crop
    for train in (True, False):
        item = ImageFolderDataset(index, [0, 1], resolution=16, train=train)[1]
        assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
        assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert item["label"] == 0


def test_datamodule_batches(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 10, "b": 10})
    dm = ImageDataModule(DataConfig(root=str(root), resolution=8, batch_size=4, num_workers=0, val_fraction=0.25))
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 8, 8) and batch["label"].shape == (4,)
    assert len(dm.val_set) == 5 and dm.class_names == ["a", "b"]


def test_bundled_emoji_dataset():
    root = REPO / "data" / "emoji"
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(folders) == 9 and "component" not in folders
    assert sum(len(list((root / f).glob("*.png"))) for f in folders) == 3786
    assert (root / "NOTICE").is_file()
    sample = Image.open(next((root / "flags").glob("*.png")))
    assert sample.mode == "RGB" and sample.size == (64, 64)


def test_class_folders_may_be_symlinks(tmp_path):
    from PIL import Image

    elsewhere = tmp_path / "elsewhere" / "cats"
    elsewhere.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(elsewhere / "a.png")
    root = tmp_path / "data"
    (root / "dogs").mkdir(parents=True)
    Image.new("RGB", (8, 8), "blue").save(root / "dogs" / "b.png")
    (root / "cats").symlink_to(elsewhere, target_is_directory=True)
    (root / "dogs" / "loop").symlink_to(root, target_is_directory=True)  # a cycle must end
    index = scan_images(root)
    assert index.class_names == ["cats", "dogs"] and len(index.paths) == 2


def test_images_between_pillows_warning_and_error_sizes_are_refused(tmp_path, monkeypatch):
    """Pillow only warns from MAX_IMAGE_PIXELS to twice that, and would decode it all."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    Image.new("RGB", (120, 120), "red").save(tmp_path / "big.png")  # 1.44x the limit: a warning only
    with pytest.raises(DatasetError, match="big.png"):
        load_rgb(tmp_path / "big.png")
