"""gradient_ad.datasets.load_images: image files into uint8 arrays, with clear errors."""

import builtins
import re

import numpy as np
import pytest

from gradient_ad import GradientAnomalyDetector
from gradient_ad.datasets import load_images

Image = pytest.importorskip("PIL.Image")


def _save(path, pixels, **kwargs):
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def _grey(seed, shape=(5, 7)):
    return np.random.RandomState(seed).randint(0, 256, size=shape, dtype=np.uint8)


def test_a_folder_reads_in_sorted_order_as_grey_uint8(tmp_path):
    pixels = [_grey(i) for i in range(3)]
    for name, p in zip(["c.png", "a.PNG", "b.png"], pixels):
        _save(tmp_path / name, p)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _save(tmp_path / "sub" / "d.png", _grey(9))  # sub-folders are not searched

    images = load_images(tmp_path)
    assert images.dtype == np.uint8 and images.shape == (3, 5, 7)
    np.testing.assert_array_equal(images, [pixels[1], pixels[2], pixels[0]])  # a, b, c


def test_colour_files_come_channels_first_and_paths_keep_their_order(tmp_path):
    rgb = np.random.RandomState(0).randint(0, 256, size=(2, 4, 6, 3), dtype=np.uint8)
    paths = [_save(tmp_path / f"{name}.png", p) for name, p in zip("ba", rgb)]
    images = load_images([str(paths[0]), paths[1]])
    assert images.shape == (2, 3, 4, 6)
    np.testing.assert_array_equal(images, np.moveaxis(rgb, -1, 1))


def test_jpeg_reads_close_to_its_pixels(tmp_path):
    pixels = np.full((8, 8), 120, np.uint8)
    pixels[:, 4:] = 200
    images = load_images([_save(tmp_path / "x.jpg", pixels, quality=95)])
    assert images.shape == (1, 8, 8)
    assert np.abs(images[0].astype(int) - pixels).max() <= 8  # lossy, but the same image


def test_size_resizes_and_mode_converts(tmp_path):
    _save(tmp_path / "a.png", _grey(0, (5, 7)))
    _save(tmp_path / "b.png", _grey(1, (9, 3)))
    assert load_images(tmp_path, size=(4, 6)).shape == (2, 4, 6)  # (height, width)
    assert load_images(tmp_path, size=4, mode="RGB").shape == (2, 3, 4, 4)


def test_another_size_names_the_file_and_the_fix(tmp_path):
    _save(tmp_path / "a.png", _grey(0, (5, 7)))
    _save(tmp_path / "b.png", _grey(1, (9, 3)))
    with pytest.raises(
        ValueError, match=r"b\.png: grey, 9 x 3 pixels.*a\.png\) is grey, 5 x 7.*size="
    ):
        load_images(tmp_path)


def test_mixed_grey_and_colour_name_the_file_and_the_fix(tmp_path):
    _save(tmp_path / "a.png", _grey(0))
    _save(tmp_path / "b.png", np.zeros((5, 7, 3), np.uint8))
    with pytest.raises(ValueError, match=r"b\.png: 3 channels.*mode='L'"):
        load_images(tmp_path)
    assert load_images(tmp_path, mode="L").shape == (2, 5, 7)


def test_an_unreadable_file_is_named(tmp_path):
    _save(tmp_path / "a.png", _grey(0))
    (tmp_path / "b.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"b\.png: cannot be read as an image"):
        load_images(tmp_path)
    with pytest.raises(ValueError, match=r"missing\.png: no such file"):
        load_images([tmp_path / "missing.png"])


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (("nowhere",), ValueError, "nowhere: no such folder"),
        (([],), ValueError, "empty"),
        ((3,), TypeError, "folder or a sequence"),
        (([1, 2],), TypeError, "must hold paths"),
        (("{folder}", (3, 0)), ValueError, "size must be"),
        (("{folder}", None, 1), TypeError, "mode must be"),
    ],
)
def test_bad_arguments_are_named(tmp_path, arguments, error, match):
    _save(tmp_path / "a.png", _grey(0))
    arguments = [str(tmp_path) if a == "{folder}" else a for a in arguments]
    with pytest.raises(error, match=match):
        load_images(*arguments)


def test_a_folder_without_images_says_what_was_looked_for(tmp_path):
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(ValueError, match=r"holds no image files \(looked for .bmp.*\.png"):
        load_images(tmp_path)


def test_without_pillow_the_extra_is_named(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_pillow(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    with pytest.raises(ImportError, match=re.escape('(the "images" extra)')):
        load_images(tmp_path)


FAST = dict(conv_channels=(4, 8), max_epochs=1, random_state=0)


def test_file_names_given_to_fit_point_to_load_images(tmp_path):
    paths = [str(tmp_path / f"image_{i}.png") for i in range(30)]
    for X in (paths, np.array(paths), tmp_path, paths[:1]):
        with pytest.raises(TypeError, match="file names.*load_images") as error:
            GradientAnomalyDetector(**FAST).fit(X)
        assert "image_5" not in str(error.value)  # not every name printed
    assert "and 29 more" in str(
        pytest.raises(TypeError, GradientAnomalyDetector(**FAST).fit, paths).value
    )


def test_pil_images_fit_as_their_arrays_and_loaded_files_as_well(tmp_path):
    pixels = [_grey(i, (12, 12)) for i in range(20)]
    pil = [Image.fromarray(p) for p in pixels]
    for i, p in enumerate(pixels):
        _save(tmp_path / f"{i:02d}.png", p)
    expected = GradientAnomalyDetector(**FAST).fit(np.stack(pixels)).score_samples(pixels[:4])
    from_pil = GradientAnomalyDetector(**FAST).fit(pil)
    np.testing.assert_array_equal(from_pil.score_samples(pil[:4]), expected)
    loaded = GradientAnomalyDetector(**FAST).fit(load_images(tmp_path))
    np.testing.assert_array_equal(loaded.score_samples(pixels[:4]), expected)
