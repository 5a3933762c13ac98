"""The shared helpers every package uses: argument checks, seeded blocks, atomic files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bayesattn._checks import check_choice, check_int, check_number, check_seed, length_range
from bayesattn._files import atomic_path, read_json, write_json
from bayesattn._random import seeded


class Oops(ValueError):
    pass


@given(st.integers(-10**6, 10**6), st.integers(-5, 5), st.integers(0, 10))
def test_check_int_accepts_exactly_the_integers_in_bounds(value, low, width):
    high = low + width
    if low <= value <= high:
        assert check_int(value, "n", low=low, high=high) == value
        assert check_int(np.int64(value), "n", low=low, high=high) == value
    else:
        with pytest.raises(ValueError, match=f"n must be an integer >= {low} and <= {high}"):
            check_int(value, "n", low=low, high=high)


@pytest.mark.parametrize("bad", [True, 1.0, "3", None, np.bool_(True)])
def test_check_int_refuses_what_is_not_an_integer_with_the_chosen_error(bad):
    with pytest.raises(TypeError, match="n must be an integer >= 1; got"):
        check_int(bad, "n", low=1, error=Oops, type_error=TypeError)
    with pytest.raises(Oops):
        check_int(0, "n", low=1, error=Oops, type_error=TypeError)
    with pytest.raises(Oops, match="seed must be an integer >= 0"):
        check_seed(-1, error=Oops)


def test_numbers_choices_and_length_ranges():
    assert check_number(0.5, "lr", low=0, low_open=True) == 0.5
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="lr must be a finite number > 0"):
            check_number(bad, "lr", low=0, low_open=True)
    assert check_choice("mean", "pooling", ("mean", "sum")) == "mean"
    with pytest.raises(ValueError, match="did you mean 'mean'"):
        check_choice("maen", "pooling", ("mean", "sum"))
    assert length_range(8) == (8, 8) and length_range((2, 9)) == (2, 9)
    assert length_range([np.int64(2), 3]) == (2, 3)
    with pytest.raises(ValueError, match="1 <= low <= high"):
        length_range((64, 8))
    with pytest.raises(TypeError, match="int or a \\(low, high\\) pair"):
        length_range("long", type_error=TypeError)
    with pytest.raises(ValueError, match="2 <= low"):
        length_range((1, 4), low=2)


def test_seeded_blocks_repeat_manual_seed_and_leave_the_global_state_alone():
    torch.manual_seed(123)
    expected = torch.randn(5)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with seeded(123):
        inside = torch.randn(5)
    torch.testing.assert_close(inside, expected, rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), before)
    with seeded(np.int64(123)):  # numpy integers are seeds too
        torch.testing.assert_close(torch.randn(5), expected, rtol=0, atol=0)


def test_atomic_writes_leave_no_half_file(tmp_path):
    path = tmp_path / "sub" / "data.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert read_json(path) == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.json"]
