"""hex_ranges: every key in exactly one range, the ranges in order are the keys' sort order."""

from __future__ import annotations

import bisect
import random

import pyarrow as pa
import pytest

from paraclip_pipeline.hex_ranges import range_bounds, range_count, range_numbers


def test_range_count_is_a_power_of_two_of_about_the_asked_size() -> None:
    assert range_count(0, 4) == range_count(4, 4) == 1
    assert range_count(5, 4) == 2
    assert range_count(1_000_000, 1 << 16) == 16
    assert range_count(10**12, 1) == 16**3


@pytest.mark.parametrize("count", [1, 2, 16, 128, 4096])
def test_range_numbers_place_each_key_by_its_whole_value(count: int) -> None:
    rng = random.Random(count)
    keys = [f"{rng.getrandbits(64):016x}" for _ in range(2000)]
    keys += ["", "0", "00", "fff", "fffz", "~", "é", "G12", "abc", "ab"]  # not hex, short
    bounds = range_bounds(count)
    assert len(bounds) == count - 1 and bounds == sorted(bounds)
    numbers = range_numbers(pa.chunked_array([keys[:7], keys[7:]]), bounds)
    assert list(numbers) == [bisect.bisect_right(bounds, key) for key in keys]
    by_range = sorted(keys, key=lambda key: (bisect.bisect_right(bounds, key), key))
    assert by_range == sorted(keys)
