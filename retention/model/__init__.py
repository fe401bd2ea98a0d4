"""The churn model's data: seed features, generated populations and training files."""
