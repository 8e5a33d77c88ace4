"""The JPEG marker reader answers only what libvips would answer the same way, and declines the rest."""

from __future__ import annotations

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy import jpeg_header
from proxy import pipeline as pipeline_module
from proxy.pipeline import SourceInfo, check_limits, configure_libvips
from tests.support import images

MAX_PIXELS = 50_000_000


@pytest.fixture(autouse=True, scope="module")
def _libvips() -> None:
    configure_libvips()


def by_libvips(data: bytes, monkeypatch: pytest.MonkeyPatch) -> SourceInfo:
    with monkeypatch.context() as patch:
        patch.setattr(pipeline_module.jpeg_header, "read", lambda _: None)
        return check_limits(data, "jpeg", MAX_PIXELS)


def sources() -> dict[str, bytes]:
    photo = images.photo(321, 207)
    found = {f"orientation-{n}": images.with_orientation(photo, n) for n in range(1, 9)}
    found["plain"] = images.jpeg(photo)
    found["no-exif"] = images.jpeg(photo, keep="none")
    found["progressive"] = images.jpeg(photo, interlace=True)
    found["grey"] = images.jpeg(photo.colourspace("b-w"))
    found["restart-markers"] = images.jpeg(photo, restart_interval=2)
    found["4:4:4"] = images.jpeg(photo, subsample_mode="off")
    return found


@pytest.mark.parametrize("name", list(sources()))
def test_plain_jpegs_read_as_libvips_reads_them(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = sources()[name]
    header = jpeg_header.read(data)
    assert header is not None, name
    assert check_limits(data, "jpeg", MAX_PIXELS) == by_libvips(data, monkeypatch)
    libvips = pyvips.Image.new_from_buffer(data, "", access="sequential")
    assert (header.width, header.height, header.components) == (libvips.width, libvips.height, libvips.bands)
    assert header.progressive == bool(libvips.get_typeof("interlaced") and libvips.get("interlaced"))


def test_what_libvips_must_decide_is_declined() -> None:
    photo = images.photo(120, 90)
    declined = {
        "profile": images.with_icc(photo, images.adobe_rgb_profile()).jpegsave_buffer(Q=90),
        "cmyk": photo.icc_transform("cmyk").jpegsave_buffer(Q=90, keep="none"),
        "png": images.png(photo),
        "truncated header": images.jpeg(photo)[:40],
        "empty": b"",
    }
    for name, data in declined.items():
        assert jpeg_header.read(data) is None, name


def test_the_walk_is_capped_so_a_hostile_run_of_markers_goes_to_libvips() -> None:
    """Python walks the markers, so fill bytes and segments are capped (a file of 20 MB of 0xFF
    would otherwise be 20 million steps on the render thread); libvips' C reader takes the rest."""
    data = images.jpeg(images.photo(64, 48), keep="none")

    def with_fill(count: int) -> bytes:  # fill bytes are legal before any marker
        return data[:2] + b"\xff" * count + data[2:]

    def with_comments(count: int) -> bytes:
        return data[:2] + b"\xff\xfe\x00\x03x" * count + data[2:]

    assert jpeg_header.read(with_fill(3)) is not None and jpeg_header.read(with_comments(10)) is not None
    assert jpeg_header.read(with_fill(jpeg_header.MAX_FILL_BYTES + 1)) is None
    assert jpeg_header.read(with_comments(jpeg_header.MAX_SEGMENTS)) is None


def test_the_profile_walk_counts_the_bytes_libvips_assembles() -> None:
    """profile_size sums the APP2 ICC_PROFILE segments after their 14-byte header, as libvips does,
    past read()'s 256-segment cap (a 16 MB profile is 257 segments), and stops once over its limit."""
    photo = images.photo(64, 48)
    cmyk = photo.icc_transform("cmyk", input_profile="srgb")
    data = cmyk.jpegsave_buffer(Q=90)
    assert jpeg_header.profile_size(data) == len(cmyk.get("icc-profile-data")) > 65_519  # several segments
    plain = images.jpeg(photo, keep="none")
    assert jpeg_header.profile_size(plain) == 0

    def with_profile(segments: int, chunk: int = 65_519) -> bytes:
        one = b"\xff\xe2" + (16 + chunk).to_bytes(2, "big") + b"ICC_PROFILE\0\x01\x01" + b"\0" * chunk
        return plain[:2] + one * segments + plain[2:]

    assert jpeg_header.profile_size(with_profile(257)) > jpeg_header.MAX_PROFILE
    assert jpeg_header.profile_size(with_profile(300)) == 129 * 65_519  # stopped once over
    assert jpeg_header.profile_size(with_profile(3, chunk=10)) == 30
    assert jpeg_header.profile_size(with_profile(jpeg_header.MAX_PROFILE_SEGMENTS + 1, chunk=1)) <= 4096


def test_an_orientation_outside_the_first_ifd_is_left_to_libvips() -> None:
    """Exif with no orientation in IFD0: libexif would look in the other IFDs, so libvips decides."""
    exif = b"Exif\x00\x00" + b"II*\x00" + (8).to_bytes(4, "little") + (0).to_bytes(2, "little") + bytes(4)
    data = images.jpeg(images.photo(64, 48), keep="none")
    with_exif = data[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + data[2:]
    assert jpeg_header.read(with_exif) is None
    assert jpeg_header.read(data) is not None


@settings(max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutated_headers_never_raise_and_agree_with_libvips(data: st.DataObject) -> None:
    source = bytearray(images.with_orientation(images.photo(97, 61), 6))
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, min(len(source) - 1, 400)))  # the markers live up front
        source[where] = data.draw(st.integers(0, 255))
    header = jpeg_header.read(bytes(source))
    if header is None:
        return
    try:
        libvips = pyvips.Image.new_from_buffer(bytes(source), "", access="sequential")
        orientation = libvips.get("orientation") if libvips.get_typeof("orientation") else 1
    except pyvips.Error:
        return  # libvips refuses it; the decode will too (simplejpeg strict, then libvips' verdict)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    assert (header.width, header.height, header.components, header.orientation) == (
        libvips.width, libvips.height, libvips.bands, orientation)
