"""The churn model: feature specs, training, prediction, evaluation, model cards, persistence."""
