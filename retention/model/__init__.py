"""The churn model: seed features, generated populations, training files, feature specs,
training, prediction, evaluation, model cards and persistence."""
