"""Training a Gaussian mixture by EM: one epoch = one EM iteration (see zoo.systems.em)."""

from __future__ import annotations

from zoo.models.gmm import GMM
from zoo.systems.em import EMSystem


class GMMSystem(EMSystem):
    """EM for ``zoo.models.gmm.GMM``: k-means initialisation, then one EM iteration per epoch.

    Logs train/log_likelihood and train/bic each epoch, {val,test}/log_likelihood (nats per image).

    Args:
        net: the mixture to train (default: ``GMM()``, 10 full-covariance components; sizes from the data).
        init_samples: training samples (in dataset order) k-means sees.
        init_from: a pretrained name or folder to continue from.
    """

    def __init__(self, net: GMM | None = None, init_samples: int = 100_000, init_from: str | None = None):
        super().__init__(net if net is not None or init_from else GMM(), init_samples, init_from)
