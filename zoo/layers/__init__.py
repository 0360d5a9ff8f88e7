"""Plain torch probabilistic building blocks (no Lightning)."""

from zoo.layers.hmm import HiddenMarkovModel
from zoo.layers.mixture import GaussianMixture
from zoo.layers.naive_bayes import (BaseNaiveBayes, BernoulliNaiveBayes, CategoricalNaiveBayes, GaussianNaiveBayes,
                                    MultinomialNaiveBayes)

__all__ = ["GaussianMixture", "HiddenMarkovModel", "BaseNaiveBayes",
           "GaussianNaiveBayes", "MultinomialNaiveBayes", "BernoulliNaiveBayes",
           "CategoricalNaiveBayes"]
