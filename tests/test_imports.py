import subprocess
import sys


def test_import_and_sampling_stay_light():
    """import zoo + load + sample must not pull in Lightning, gradio, transformers or torchvision."""
    code = (
        "import sys, zoo; zoo.load('vae-digits').sample(4, seed=0); "
        "print(','.join(m for m in ('lightning', 'gradio', 'transformers', 'torchvision', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_wheel_lists_every_subpackage():
    """pyproject lists packages explicitly (to ship demo/ as zoo.demo): a new subpackage must be added there."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "zoo").rglob("__init__.py")}
    assert on_disk | {"zoo.demo"} == listed
