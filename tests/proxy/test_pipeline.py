"""The pipeline on generated images: formats, orientation, colour, alpha, frames, limits."""

from __future__ import annotations

import dataclasses

import pytest
import pyvips

from proxy.errors import ProxyError, TooManyPixels, Undecodable, UnsupportedType
from proxy.pipeline import (
    FALLBACK_QUALITIES,
    MAX_OUTPUT_BYTES,
    Rendered,
    average_colour,
    configure_libvips,
    encode,
    materialise,
    orient,
    render,
)
from proxy.variants import THUMB
from tests.support import images

MAX_PIXELS = 50_000_000


@pytest.fixture(autouse=True, scope="module")
def _libvips() -> None:
    configure_libvips()


def make(data: bytes) -> Rendered:
    return render(data, THUMB, MAX_PIXELS)


def pixel(rendered: Rendered, x: float, y: float) -> list[float]:
    image = pyvips.Image.new_from_buffer(rendered.data, "")
    return image(int(x * (image.width - 1)), int(y * (image.height - 1)))


def close(actual: list[float], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def assert_clean_jpeg(rendered: Rendered) -> pyvips.Image:
    assert rendered.data.startswith(b"\xff\xd8\xff")
    assert len(rendered.data) < MAX_OUTPUT_BYTES
    image = pyvips.Image.new_from_buffer(rendered.data, "")
    fields = set(image.get_fields())
    assert not fields & {"exif-data", "xmp-data", "iptc-data", "icc-profile-data", "jpeg-comment"}
    assert b"Exif" not in rendered.data and b"http://ns.adobe.com/xap" not in rendered.data
    assert b"\xff\xfe" not in rendered.data[:200]  # no COM segment
    assert image.bands == 3 and image.interpretation == "srgb"
    return image


@pytest.mark.parametrize(
    "fmt, encode",
    [
        ("jpeg", lambda im: im.jpegsave_buffer()),
        ("png", lambda im: im.pngsave_buffer()),
        ("webp", lambda im: im.webpsave_buffer()),
        ("gif", lambda im: im.gifsave_buffer()),
        ("tiff", lambda im: im.tiffsave_buffer()),
        ("bigtiff", lambda im: im.tiffsave_buffer(bigtiff=True)),
        ("avif", lambda im: im.heifsave_buffer(compression="av1")),
    ],
)
def test_each_format_gives_a_fresh_bounded_jpeg(fmt: str, encode) -> None:
    source = encode(images.photo(400, 300))
    rendered = make(source)
    image = assert_clean_jpeg(rendered)
    assert (image.width, image.height) == (200, 150)
    assert (rendered.width, rendered.height) == (400, 300)
    assert rendered.data != source


def test_jpeg_source_is_reencoded_not_echoed() -> None:
    source = images.jpeg(images.photo(150, 100))  # already inside the box
    rendered = make(source)
    assert rendered.data != source
    assert (rendered.output_width, rendered.output_height) == (150, 100)


def test_metadata_is_stripped() -> None:
    image = images.photo(300, 200).copy()
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Someone Private")
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd2-UserComment", "GPS somewhere")
    image = images.with_icc(image, images.adobe_rgb_profile())
    rendered = make(image.jpegsave_buffer(keep="all"))
    assert_clean_jpeg(rendered)
    assert b"Someone Private" not in rendered.data


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    rendered = make(images.with_orientation(images.quadrants(80, 40), orientation))
    assert (rendered.output_width, rendered.output_height) == (80, 40)
    assert (rendered.width, rendered.height) == (80, 40)
    assert close(pixel(rendered, 0.1, 0.1), images.RED)
    assert close(pixel(rendered, 0.9, 0.1), images.GREEN)
    assert close(pixel(rendered, 0.1, 0.9), images.BLUE)


def test_orient_matches_libvips_autorot_for_all_values() -> None:
    base = images.quadrants(30, 20)
    for orientation in range(1, 9):
        tagged = base.copy()
        tagged.set_type(pyvips.GValue.gint_type, "orientation", orientation)
        expected = tagged.autorot()
        mine = orient(base, orientation)
        assert (mine.width, mine.height) == (expected.width, expected.height)
        assert (mine - expected).abs().max() == 0


def test_invalid_orientation_is_treated_as_upright() -> None:
    stored = images.quadrants(80, 40).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 9)
    rendered = make(stored.jpegsave_buffer(Q=95))
    assert (rendered.output_width, rendered.output_height) == (80, 40)
    assert close(pixel(rendered, 0.1, 0.1), images.RED)


def test_adobe_rgb_profile_is_converted_to_srgb() -> None:
    profile = images.adobe_rgb_profile()
    tagged = images.with_icc(images.solid(64, 64, (100, 150, 200)), profile)
    expected = tagged.icc_transform("srgb", embedded=True)(5, 5)
    rendered = make(tagged.jpegsave_buffer(Q=95))
    got = pixel(rendered, 0.5, 0.5)
    assert close(got, tuple(round(v) for v in expected), tolerance=6)
    assert abs(got[0] - 100) > 20  # the profile changed the colour, so it was honoured


def test_display_p3_is_converted_to_srgb() -> None:
    p3 = images.solid(64, 64, (200, 30, 40)).icc_transform("p3")
    rendered = make(p3.jpegsave_buffer(Q=95))
    assert close(pixel(rendered, 0.5, 0.5), (200, 30, 40), tolerance=8)


@pytest.mark.parametrize("keep_profile", [True, False])
def test_cmyk_is_never_a_negative(keep_profile: bool) -> None:
    cmyk = images.solid(64, 64, (200, 30, 40)).icc_transform("cmyk")
    source = cmyk.jpegsave_buffer(Q=95, keep="all" if keep_profile else "none")
    assert pyvips.Image.new_from_buffer(source, "").interpretation == "cmyk"
    rendered = make(source)
    red, green, blue = pixel(rendered, 0.5, 0.5)
    assert red > 150 and green < 90 and blue < 90


def test_sixteen_bit_rgb() -> None:
    wide = pyvips.Image.black(300, 200, bands=3).linear(1, [60000, 2000, 30000])
    wide = wide.cast("ushort").copy(interpretation="rgb16")
    rendered = make(wide.pngsave_buffer())
    assert_clean_jpeg(rendered)
    assert close(pixel(rendered, 0.5, 0.5), (233, 8, 117), tolerance=12)


@pytest.mark.parametrize("bits", [8, 16])
def test_greyscale(bits: int) -> None:
    grey = pyvips.Image.black(300, 200) + (128 if bits == 8 else 128 * 257)
    grey = grey.cast("uchar" if bits == 8 else "ushort").copy(interpretation="b-w" if bits == 8 else "grey16")
    rendered = make(grey.pngsave_buffer())
    assert_clean_jpeg(rendered)
    assert close(pixel(rendered, 0.5, 0.5), (128, 128, 128), tolerance=6)


def test_alpha_is_flattened_onto_white() -> None:
    transparent = images.solid(100, 100, (10, 10, 10, 0))
    transparent = transparent.copy(interpretation="srgb")
    rendered = make(transparent.pngsave_buffer())
    assert close(pixel(rendered, 0.5, 0.5), (255, 255, 255), tolerance=4)
    assert rendered.color == "#ffffff"


@pytest.mark.parametrize("fmt", ["gif", "webp", "tiff"])
def test_animated_and_multipage_use_the_first_frame(fmt: str) -> None:
    rendered = make(images.animated([images.RED, images.BLUE, images.GREEN], size=32, fmt=fmt))
    assert (rendered.output_width, rendered.output_height) == (32, 32)
    assert close(pixel(rendered, 0.5, 0.5), images.RED)


@pytest.mark.parametrize("size, expected", [((10_000, 10), (200, 1)), ((10, 10_000), (1, 200))])
def test_extreme_aspect_keeps_at_least_one_pixel(size: tuple[int, int], expected: tuple[int, int]) -> None:
    rendered = make(images.png(images.solid(*size)))
    assert (rendered.output_width, rendered.output_height) == expected


def test_tiny_source_is_not_upscaled() -> None:
    rendered = make(images.png(images.solid(10, 10)))
    assert (rendered.output_width, rendered.output_height) == (10, 10)


def test_aspect_is_kept_and_longest_side_is_200() -> None:
    rendered = make(images.jpeg(images.photo(1000, 250)))
    assert (rendered.output_width, rendered.output_height) == (200, 50)


def test_dominant_colour() -> None:
    assert make(images.png(images.solid(50, 50, (18, 52, 86)))).color == "#123456"


def test_noisy_source_still_fits_the_byte_cap() -> None:
    noise = pyvips.Image.gaussnoise(400, 400, sigma=90, mean=128).cast("uchar")
    noise = noise.bandjoin([noise.rot180(), noise.fliphor()]).copy(interpretation="srgb")
    rendered = make(noise.pngsave_buffer())
    assert len(rendered.data) < MAX_OUTPUT_BYTES


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", UnsupportedType),
        (images.random_bytes(), UnsupportedType),
        (images.HTML, UnsupportedType),
        (images.SVG_WITH_REFERENCES, UnsupportedType),
        (images.FAKE_HEIC, UnsupportedType),
        (images.png_bomb(), TooManyPixels),
        (images.jpeg_bomb(), TooManyPixels),
        (images.gif_bomb(), TooManyPixels),
        (images.webp_bomb(), TooManyPixels),
    ],
    ids=["empty", "random", "html", "svg", "heic-undecodable", "png-bomb", "jpeg-bomb", "gif-bomb", "webp-bomb"],
)
def test_bad_inputs_fail_with_their_error(data: bytes, error: type[ProxyError]) -> None:
    with pytest.raises(error):
        make(data)


@pytest.mark.parametrize("encode", [images.jpeg, images.png], ids=["jpeg", "png"])
def test_truncated_image_is_undecodable(encode) -> None:
    whole = encode(images.photo(600, 400))
    with pytest.raises(Undecodable):
        make(whole[: len(whole) // 2])


def test_pixel_limit_is_configurable() -> None:
    with pytest.raises(TooManyPixels):
        render(images.png(images.solid(100, 100)), THUMB, 9_999)
    assert render(images.png(images.solid(100, 100)), THUMB, 10_000).output_width == 100


@pytest.mark.parametrize("fmt", ["png", "jpeg"])  # libvips' header, then the plain-JPEG marker reader
def test_side_limit_is_configurable(fmt: str) -> None:
    def source(width: int, height: int) -> bytes:
        image = images.solid(width, height)
        return images.png(image) if fmt == "png" else images.jpeg(image)

    for width, height in ((1001, 1), (1, 1001)):
        with pytest.raises(TooManyPixels, match=f"{width}x{height} has a side over the 1000 pixel limit"):
            render(source(width, height), THUMB, MAX_PIXELS, max_side=1000)
    assert render(source(1000, 1), THUMB, MAX_PIXELS, max_side=1000).output_width == 200
    assert render(source(1, 1000), THUMB, MAX_PIXELS, max_side=1000).output_height == 200


@pytest.mark.parametrize("seed", range(6))
def test_placeholder_colour_is_libvips_band_mean(seed: int) -> None:
    """The numpy sum gives what libvips' own ``stats`` means round to, on noisy thumbnails of odd sizes."""
    width, height = 37 + 29 * seed, 200 - 17 * seed
    noise = pyvips.Image.gaussnoise(width, height, sigma=60 + 10 * seed, mean=40 + 30 * seed, seed=seed)
    # Three different bands, so a band mixed up or summed across shows.
    image = noise.bandjoin([noise.linear(0.5, 20), noise.linear(-1, 255)]).cast("uchar").copy(interpretation="srgb")
    stats = image.stats()
    means = [round(stats(4, band)[0]) for band in (1, 2, 3)]
    assert average_colour(image.write_to_memory()) == "#{:02x}{:02x}{:02x}".format(*means)


@pytest.mark.parametrize("seed", range(8))
def test_encoder_gives_libvips_jpegsave_bytes(seed: int) -> None:
    """Pillow's libjpeg-turbo writes what libvips' jpegsave wrote with the same settings, byte for
    byte once Pillow's JFIF segment is dropped: photos and noise, odd sizes, every ladder quality."""
    width, height = 1 + 37 * seed, 200 - 23 * seed
    if seed % 2:
        base = images.photo(max(width, 8), max(height, 8)).crop(0, 0, width, height)
    else:
        noise = pyvips.Image.gaussnoise(width, height, sigma=30 + 10 * seed, mean=128, seed=seed).cast("uchar")
        other = pyvips.Image.gaussnoise(width, height, seed=seed + 1).cast("uchar")
        base = noise.bandjoin([other, other.rot180()]).copy(interpretation="srgb")
    pixels = materialise(base)
    for quality in (THUMB.quality, *FALLBACK_QUALITIES):
        variant = dataclasses.replace(THUMB, quality=quality, max_bytes=10**9)
        expected = base.jpegsave_buffer(Q=quality, optimize_coding=True, keep="none", subsample_mode="on")
        assert encode(pixels, variant) == expected, (seed, quality)


def test_encoder_walks_the_quality_ladder_to_fit_the_cap() -> None:
    noise = pyvips.Image.gaussnoise(200, 200, sigma=90, mean=128).cast("uchar")
    pixels = materialise(noise.bandjoin([noise.rot180(), noise.fliphor()]).copy(interpretation="srgb"))
    first = encode(pixels, dataclasses.replace(THUMB, max_bytes=10**9))
    capped = encode(pixels, dataclasses.replace(THUMB, max_bytes=len(first) - 1))
    assert len(capped) < len(first) and capped.startswith(b"\xff\xd8\xff\xdb")  # a lower quality, no JFIF
    assert pyvips.Image.new_from_buffer(capped, "").width == 200


def test_the_png_chunk_walk_counts_inflated_text_without_holding_it() -> None:
    """A text bomb is refused by counting what it inflates to, 64 KB at a time: holding the
    8 MB it may inflate to while counting cost each refused request that much memory."""
    import random
    import tracemalloc
    import zlib

    from proxy import png_header
    from tests.support.images import _png_chunk

    base = images.png(images.photo(64, 64))
    # Text that compresses 1,000:1, and 12 MB stored as is (each step must not copy what is left).
    for packed in (zlib.compress(b"A" * (9 << 20), 9), zlib.compress(random.Random(0).randbytes(12 << 20), 0)):
        bomb = base[:33] + _png_chunk(b"zTXt", b"Comment\0\0" + packed) + base[33:]
        tracemalloc.start()
        try:
            refusal = png_header.check(bomb)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert refusal is not None and "inflates to more than 8 MB" in refusal.reason
        assert peak < 1_000_000, peak
