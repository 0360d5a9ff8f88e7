"""Fitting naive Bayes through Lightning: one epoch sums the statistics, the M-step is the whole fit."""

from __future__ import annotations


from zoo.models.naive_bayes import NaiveBayes
from zoo.systems.em import EMSystem


class NaiveBayesSystem(EMSystem):
    """Closed-form naive Bayes on (image, label) batches; under DDP the class statistics are summed.

    One epoch is enough (more epochs recompute the same fit). Logs train/log_likelihood (joint
    log p(x, y) per image under the parameters the epoch started with), and {val,test}/accuracy and
    {val,test}/log_likelihood (joint, nats per image).

    Args:
        net: the classifier (default: ``NaiveBayes()``, Gaussian; its sizes come from the data).
        init_from: a pretrained name or folder (its statistics are replaced by this fit's).
    """

    def __init__(self, net: NaiveBayes | None = None, init_from: str | None = None):
        super().__init__(net if net is not None or init_from else NaiveBayes(), init_samples=0, init_from=init_from)

    def _inputs(self, batch) -> tuple:
        x, y = batch
        return x, y

    def _shared_step(self, batch, stage: str) -> None:
        x, y = batch
        if len(x) == 0:
            return None
        metrics = {f"{stage}/accuracy": (self.net.predict(x) == y).double().mean(),
                   f"{stage}/log_likelihood": self.net.log_prob(x, y).double().mean()}
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(x))
        return None
