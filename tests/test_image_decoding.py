"""Image decoding in the one preprocessing definition: 16-bit, EXIF orientation, alpha, pixel limit."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_folder import ImageFolderDataModule
from runtime.preprocessing import BadInputError, PreprocessSpec, decode_image, normalize_image, preprocess_image_bytes


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    """Encode one PIL image to bytes."""
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def spec_for(height: int, width: int, channels: int = 1, **kwargs) -> PreprocessSpec:
    """An identity-normalised spec (mean 0, std 1) so tensors equal pixel/255."""
    return PreprocessSpec(kind="image", labels=["a", "b"], image_size=[height, width], channels=channels,
                          mean=[0.0] * channels, std=[1.0] * channels, **kwargs)


@pytest.fixture
def gray16_png() -> tuple[bytes, np.ndarray]:
    """A 16-bit grayscale PNG, a horizontal gradient over the full 0..65535 range."""
    values = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    image = Image.fromarray(values)
    assert image.mode.startswith("I")
    return encode(image), values


@pytest.fixture
def rotated_jpeg() -> tuple[bytes, np.ndarray]:
    """Stored 128 wide x 64 high (left half black), EXIF orientation 6: displays 64 wide x 128 high."""
    stored = np.full((64, 128), 255, np.uint8)
    stored[:, :64] = 0
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    displayed = np.rot90(stored, k=-1)  # clockwise: the left half becomes the top half
    return encode(Image.fromarray(stored, "L"), "JPEG", quality=95, exif=exif), displayed


@pytest.fixture(params=["RGBA", "LA", "P"])
def transparent_png(request) -> tuple[bytes, np.ndarray]:
    """An 8x8 PNG whose left half is fully transparent over black pixels, right half opaque red/gray."""
    alpha = np.zeros((8, 8), bool)
    alpha[:, :4] = True
    if request.param == "RGBA":
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[:, 4:] = (200, 0, 0, 255)
        image = Image.fromarray(rgba, "RGBA")
    elif request.param == "LA":
        la = np.zeros((8, 8, 2), np.uint8)
        la[:, 4:] = (90, 255)
        image = Image.fromarray(la, "LA")
    else:
        index = np.where(alpha, 0, 1).astype(np.uint8)
        image = Image.fromarray(index, "P")
        image.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
        image.info["transparency"] = 0
    data = encode(image, transparency=0) if request.param == "P" else encode(image)
    return data, alpha


def test_16bit_grayscale_png_keeps_its_gradient(gray16_png):
    data, values = gray16_png
    x = preprocess_image_bytes(data, spec_for(16, 64))
    expected = torch.from_numpy(np.rint(values / 257.0) / 255.0).float()
    assert x.std() > 0.25  # before: PIL clipped every value above 255 to white (a near-constant tensor)
    assert torch.allclose(x[0], expected, atol=1.5 / 255)


def test_exif_orientation_is_applied(rotated_jpeg):
    data, displayed = rotated_jpeg
    spec = spec_for(128, 64)
    assert normalize_image(decode_image(data, spec), spec).size == (64, 128)  # (width, height) as displayed
    x = preprocess_image_bytes(data, spec)[0]
    assert x.shape == (128, 64)
    assert (x - torch.from_numpy(displayed / 255.0).float()).abs().mean() < 0.02
    assert x[:60].mean() < 0.05 and x[68:].mean() > 0.95  # the black half is on top, as displayed


@pytest.mark.parametrize("background", [None, [0, 128, 255]])
def test_alpha_is_composited_on_the_background(transparent_png, background):
    data, transparent = transparent_png
    spec = spec_for(8, 8, channels=3, **({} if background is None else {"background": background}))
    x = preprocess_image_bytes(data, spec)
    colour = torch.tensor(spec.background, dtype=torch.float32).view(3, 1) / 255.0
    mask = torch.from_numpy(transparent)
    assert torch.allclose(x[:, mask], colour.expand(3, int(mask.sum())), atol=1e-6)
    assert not torch.allclose(x[:, ~mask], colour.expand(3, int((~mask).sum())), atol=0.05)  # opaque kept


def test_pixel_limit_is_configurable_and_named(tmp_path):
    image = encode(Image.new("RGB", (20, 20), (10, 20, 30)))
    with pytest.raises(BadInputError, match=r"20x20 = 400 pixels, limit max_image_pixels=100") as err:
        decode_image(image, spec_for(4, 4, channels=3, max_image_pixels=100))
    assert err.value.status == 413 and "datamodule.max_image_pixels" in str(err.value)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            (tmp_path / name / f"{i}.png").write_bytes(image)
    (tmp_path / "a" / "big.png").write_bytes(encode(Image.new("RGB", (30, 30))))
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=(4, 4), augment=None, max_image_pixels=500,
                               max_bad_fraction=0.5, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert [b.where for b in dm.bad_records] == ["a/big.png"]
    assert "max_image_pixels=500" in dm.bad_records[0].reason
    assert dm.preprocess_spec().max_image_pixels == 500  # preprocess.json carries it to serving and scoring
    raised = ImageFolderDataModule(root=str(tmp_path), image_size=(4, 4), augment=None, max_image_pixels=1000,
                                   val_fraction=0.2, test_fraction=0.2)
    raised.setup()
    assert not raised.bad_records and raised.total_records == 7


def test_training_decodes_like_serving(tmp_path, gray16_png, rotated_jpeg):
    """The datamodule's tensors equal the serving path's for the same files."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    files = {"a/gray16.png": gray16_png[0], "b/rotated.jpg": rotated_jpeg[0]}
    for i in range(2):
        files[f"a/x{i}.png"] = files[f"b/y{i}.png"] = encode(Image.new("L", (9, 9), 40 * i))
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=(32, 16), channels=1, mean=[0.0], std=[1.0],
                               augment=None, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    spec = dm.preprocess_spec()
    dataset = dm._make_dataset("val", list(range(len(dm.paths))))
    for i, rel in enumerate(dm.item_ids):
        assert torch.equal(dataset[i]["pixel_values"], preprocess_image_bytes(files[rel], spec)), rel
    trained = {rel: dataset[i]["pixel_values"][0] for i, rel in enumerate(dm.item_ids)}
    assert trained["a/gray16.png"].std() > 0.25  # trained on the gradient, not a white square
    assert trained["b/rotated.jpg"][:14].mean() < 0.05  # trained upright: the black half on top
