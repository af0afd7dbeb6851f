"""The grounding rules' number reading: a model may write in digits what the evidence says in words."""

from __future__ import annotations

import pytest

from tl_mcp.sandbox.answerers.grounding import _numbers


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("A return ticket costs thirty five euros.", {"35"}),
        ("Bake it at two hundred twenty degrees.", {"220"}),
        ("Two hundred and five people came.", {"205"}),
        ("One thousand two hundred kilometres", {"1200"}),
        ("It costs $2 per pound, or 1.50 a bag.", {"2", "1.5"}),
        ("Revenue grew twenty-five percent in 2026.", {"25", "2026"}),
        ("Chapter three, then chapter 4.", {"3", "4"}),
    ],
)
def test_numbers_in_digits_and_words(text: str, numbers: set[str]) -> None:
    assert _numbers(text) == numbers
