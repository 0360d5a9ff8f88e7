import atexit
import gzip
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from zoo.data.digits import SPEC as DIGITS

# Tests never touch the network: the Hub is reached only through a real local cache folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Nor do corpora: tinyshakespeare (karpathy/char-rnn, MIT) ships with the tests, gzipped, and is unpacked
# once per run, unless GENZOO_DATA_DIR already names a folder that holds it.
if "GENZOO_DATA_DIR" not in os.environ:
    _corpora = tempfile.mkdtemp(prefix="genzoo-test-corpora-")
    atexit.register(shutil.rmtree, _corpora, ignore_errors=True)
    with gzip.open(Path(__file__).parent / "data" / "tinyshakespeare.txt.gz", "rb") as packed:
        (Path(_corpora) / "tinyshakespeare.txt").write_bytes(packed.read())
    os.environ["GENZOO_DATA_DIR"] = _corpora


@pytest.fixture
def vae():
    from zoo.models.vae import VAE

    torch.manual_seed(0)
    return VAE(latent_dim=4, hidden=8).fit_to_data(DIGITS).eval()


@pytest.fixture
def cvae():
    from zoo.models.vae import VAE

    torch.manual_seed(1)
    return VAE(latent_dim=4, hidden=8, num_classes=10).fit_to_data(DIGITS).eval()


@pytest.fixture(scope="session")
def digits_test():
    from zoo.data.digits import digits_split

    return digits_split("test")


@pytest.fixture(scope="session")
def trained_vae():
    """A tiny VAE trained for 150 steps: a posterior far from the prior, so the IWAE bound has work to do."""
    from zoo.data.digits import digits_split
    from zoo.models.vae import VAE

    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden=8).fit_to_data(DIGITS)
    x, _ = digits_split("train")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        batch = x[torch.randint(len(x), (64,))]
        opt.zero_grad()
        model.elbo(batch)["loss"].backward()
        opt.step()
    return model.eval()
