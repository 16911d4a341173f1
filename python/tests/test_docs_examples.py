"""Every Python example in README.md and docs/python.md runs as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(name):
    return [(name, i, code) for i, code in enumerate(BLOCK.findall((ROOT / name).read_text()))]


EXAMPLES = blocks("README.md") + blocks("docs/python.md")


def test_the_docs_have_python_examples():
    assert {name for name, _, _ in EXAMPLES} == {"README.md", "docs/python.md"}


@pytest.mark.parametrize("name,index,code", EXAMPLES, ids=lambda v: str(v)[:20])
def test_example_runs(name, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{name} example {index + 1}", "exec"), {"__name__": "__example__"})
