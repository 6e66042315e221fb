import numpy as np
import pytest
import torch
from PIL import Image

from stylediff.core.errors import ImageError, NumericalError, OutputError
from stylediff.core.images import load_image, save_image
from stylediff.core.io import atomic_path, write_json


def rgb_array(h=40, w=60):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1).astype(np.uint8)


def test_rgb_png_round_trip(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_array()).save(path)
    image = load_image(path)
    assert image.shape == (1, 3, 40, 60) and image.dtype == torch.float32
    save_image(image, tmp_path / "out.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), rgb_array())


def test_size_is_the_longest_side(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_array(40, 60)).save(path)
    assert load_image(path, 30).shape == (1, 3, 20, 30)
    assert load_image(path, 120).shape == (1, 3, 80, 120)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "CMYK"])
def test_other_modes_are_converted(tmp_path, mode):
    base = Image.fromarray(rgb_array())
    if mode == "I;16":
        grey = np.asarray(base.convert("L")).astype(np.uint16) * 257
        img, suffix = Image.fromarray(grey), ".png"
        assert img.mode.startswith("I;16")
    elif mode == "CMYK":
        img, suffix = base.convert("CMYK"), ".jpg"
    else:
        img, suffix = base.convert(mode), ".png"
    path = tmp_path / f"img_{mode.replace(';', '')}{suffix}"
    img.save(path)
    image = load_image(path, 30)
    assert image.shape == (1, 3, 20, 30)
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05
    if mode == "I;16":  # 16-bit values are scaled, not clipped at 255
        expected = torch.from_numpy(np.asarray(base.convert("L").resize((30, 20), Image.Resampling.LANCZOS)) / 255)
        assert (image[0, 0] - expected).abs().mean() < 0.03


@pytest.mark.parametrize("mode, suffix, dtype", [("I;16", ".png", np.uint16), ("I", ".tif", np.int32)])
def test_16_bit_images_are_scaled_by_their_range_not_their_content(tmp_path, mode, suffix, dtype):
    """A dark 16-bit image (every value <= 255) stays dark, and one brighter pixel changes no other pixel."""
    dark = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint16)
    bright = dark.copy()
    bright[0, 0] = 300
    levels = np.array([[0, 255, 257 * 100, 65535]], dtype=np.uint16).repeat(2, axis=0)
    loaded = []
    for name, array in (("dark", dark), ("bright", bright), ("levels", levels)):
        path = tmp_path / f"{name}{suffix}"
        Image.fromarray(array.astype(dtype)).save(path)
        with Image.open(path) as img:
            assert img.mode == mode
        loaded.append(load_image(path))
    assert (loaded[0] * 255).round().max().item() == 1  # 255 / 65535 of full scale: the first 8-bit level
    assert torch.equal(loaded[0][..., 1:], loaded[1][..., 1:])  # the bright pixel's column aside
    assert loaded[2][0, 0, 0].tolist() == pytest.approx([0, 1 / 255, 100 / 255, 1])


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    path = tmp_path / "clear.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert torch.all(load_image(path) == 1.0)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    path = tmp_path / f"cut.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path)


def test_too_small_for_the_layers_names_the_minimum(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(rgb_array(1, 1)).save(path)
    with pytest.raises(ImageError, match="at least 16 px"):
        load_image(path, None, min_side=16)


def test_huge_jpeg_is_reduced_while_decoding(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (6000, 4000), (200, 100, 50)).save(path, quality=70)
    image = load_image(path, 64)
    assert image.shape == (1, 3, 43, 64)
    torch.testing.assert_close(image[0, :, 20, 30], torch.tensor([200, 100, 50]) / 255, atol=0.02, rtol=0)


def test_bad_size(tmp_path):
    with pytest.raises(ImageError, match="positive"):
        load_image(tmp_path / "x.png", 0)


def test_nan_image_is_not_written(tmp_path):
    with pytest.raises(NumericalError):
        save_image(torch.full((1, 3, 4, 4), float("nan")), tmp_path / "nan.png")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot create output folder"):
        save_image(torch.zeros(1, 3, 2, 2), blocker / "sub" / "out.png")
