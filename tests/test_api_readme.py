"""README's "Testing with pyruntime" example is a test file that passes as it stands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("\n## Testing with pyruntime\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.M | re.S)
    assert len(blocks) == 1, "the section has one Python example"
    return blocks[0]


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    example = readme_example()
    assert len(example.splitlines()) <= 20  # "a 20-line example"
    pytester.makepyfile(test_readme=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=len(re.findall(r"^def test_", example, re.M)))
