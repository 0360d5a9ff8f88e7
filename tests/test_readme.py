"""The README's Python blocks run as pasted (in a scratch folder): what a new user copies works.

Left out, and why: a line that pushes to the Hub (needs an account and the network), and a block that downloads
a dataset (``prepare_data``: the network); everything else runs as written.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NETWORK = ("push_to_hub(",)


def offline_blocks() -> list[str]:
    """The README's Python blocks, but the one that downloads (tests/data/test_downloads.py serves its files)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b for b in blocks if "prepare_data()" not in b]


def test_the_readme_has_python_blocks():
    assert len(offline_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(offline_blocks())))
def test_a_readme_python_block_runs_as_pasted(index, tmp_path, monkeypatch, capsys):
    block = offline_blocks()[index]
    source = "\n".join(line for line in block.splitlines() if not any(n in line for n in NETWORK))
    monkeypatch.chdir(tmp_path)
    exec(compile(source, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
