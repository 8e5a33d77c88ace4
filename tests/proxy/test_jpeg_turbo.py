"""The libjpeg-turbo decode path gives the bytes libvips' own decoder gives, and is really taken.

Every case renders twice: as the product does (plain JPEGs through :mod:`proxy.jpeg_turbo`)
and with that path switched off (libvips decodes everything). The thumbnails must be the
same bytes, with the same size and placeholder colour; and the fast path must have been
used for every plain JPEG, so a change that quietly sends everything back to libvips fails
here too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvips

from proxy import jpeg_turbo
from proxy.errors import Undecodable
from proxy.pipeline import Rendered, configure_libvips, render
from proxy.variants import CELL, CELL_2X, THUMB, Variant
from tests.support import images

MAX_PIXELS = 50_000_000
VARIANTS = (THUMB, CELL, CELL_2X)


@pytest.fixture(autouse=True, scope="module")
def _libvips() -> None:
    configure_libvips()


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Records, per call of the fast path, whether it produced the image (True) or declined."""
    calls: list[bool] = []
    real = jpeg_turbo.decode

    def spy(*args: object) -> pyvips.Image | None:
        image = real(*args)  # type: ignore[arg-type]
        calls.append(image is not None)
        return image

    monkeypatch.setattr(jpeg_turbo, "decode", spy)
    yield calls


def libvips_only(data: bytes, variant: Variant, monkeypatch: pytest.MonkeyPatch) -> Rendered:
    with monkeypatch.context() as patch:
        patch.setattr(jpeg_turbo, "decode", lambda *args: None)
        return render(data, variant, MAX_PIXELS)


# Sizes on both sides of every shrink-on-load step for the 200 and 400 px boxes (4x, 8x and
# 16x the box), odd sizes libjpeg rounds up, and extreme aspects.
SIZES = [(640, 480), (799, 600), (800, 600), (801, 601), (1024, 768), (1023, 767), (1024, 1024),
         (1600, 1200), (1601, 900), (3199, 1800), (3200, 1800), (3840, 2160), (2160, 3840),
         (4000, 250), (300, 3300), (6401, 500)]


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_same_bytes_as_libvips_at_every_scale(size: tuple[int, int], decoded: list[bool],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = images.jpeg(images.photo(*size))
    for variant in VARIANTS:
        fast = render(data, variant, MAX_PIXELS)
        slow = libvips_only(data, variant, monkeypatch)
        assert fast == slow, f"{variant.name}: {len(fast.data)} vs {len(slow.data)} bytes"
    assert decoded == [True] * len(VARIANTS)


@pytest.mark.parametrize(
    "name, options",
    [
        ("progressive", {"interlace": True}),
        ("4:4:4", {"subsample_mode": "off"}),
        ("restart markers", {"restart_interval": 4}),
        ("optimised tables", {"optimize_coding": True}),
        ("arithmetic-free baseline, no chroma", {"subsample_mode": "off", "optimize_coding": True}),
    ],
)
def test_same_bytes_for_each_jpeg_layout(name: str, options: dict[str, object], decoded: list[bool],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = images.jpeg(images.photo(1024, 768), **options)
    for variant in VARIANTS:
        assert render(data, variant, MAX_PIXELS) == libvips_only(data, variant, monkeypatch), variant.name
    assert all(decoded) and len(decoded) == len(VARIANTS)


def test_greyscale_and_orientation_take_the_fast_path_too(decoded: list[bool],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    grey = images.jpeg(images.photo(1200, 900).colourspace("b-w"))
    turned = images.with_orientation(images.photo(1024, 768), 6)
    for data in (grey, turned):
        assert render(data, THUMB, MAX_PIXELS) == libvips_only(data, THUMB, monkeypatch)
    assert decoded == [True, True]


def test_profiles_and_cmyk_stay_with_libvips(decoded: list[bool]) -> None:
    tagged = images.jpeg(images.with_icc(images.photo(800, 600), images.adobe_rgb_profile()))
    cmyk = images.jpeg(images.photo(800, 600).colourspace("cmyk"))
    for data in (tagged, cmyk):
        render(data, THUMB, MAX_PIXELS)
    assert decoded == []  # never offered: colour management is libvips' job


def test_a_truncated_jpeg_is_still_undecodable(decoded: list[bool]) -> None:
    data = images.jpeg(images.photo(1024, 768))
    with pytest.raises(Undecodable):
        render(data[: len(data) // 2], THUMB, MAX_PIXELS)
    assert decoded == [False]  # declined (libjpeg's warning is an error there); libvips refused it


def test_recoverable_corruption_renders_as_libvips_renders_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = images.jpeg(images.photo(1024, 768))
    # Stray bytes before the end-of-image marker: libjpeg warns ("extraneous bytes"), libvips
    # renders; whichever decoder ends up doing it, the thumbnail is the same.
    noisy = data[:-2] + b"\x00\x00\x00" + data[-2:]
    assert render(noisy, THUMB, MAX_PIXELS) == libvips_only(noisy, THUMB, monkeypatch)


def test_the_decode_budget_sends_big_decodes_to_libvips_streaming(decoded: list[bool]) -> None:
    data = images.jpeg(images.photo(640, 480))
    # The 400 px square needs the whole 640 x 480 decoded (921,600 bytes here); libvips would
    # stream it in rows (under 500 KB). A budget between the two streams it.
    budget = jpeg_turbo.decoded_bytes(640, 480, 1) - 1
    render(data, CELL_2X, MAX_PIXELS, budget)
    assert decoded == []
    render(data, CELL_2X, MAX_PIXELS, budget + 1)
    assert decoded == [True]


@pytest.mark.parametrize("bands, interpretation", [(3, "srgb"), (1, "b-w")])
def test_decoded_images_carry_their_interpretation(bands: int, interpretation: str) -> None:
    """The decoder relies on libvips tagging an 8-bit memory image by its bands (no copy to set it)."""
    image = pyvips.Image.black(64, 48, bands=bands).cast("uchar")
    if bands == 1:
        image = image.copy(interpretation="b-w")
    data = image.jpegsave_buffer(Q=90)
    decoded = jpeg_turbo.decode(data, 2, 64, 48)
    assert decoded is not None
    assert (decoded.bands, decoded.interpretation, decoded.format) == (bands, interpretation, "uchar")
