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
