"""Retention analytics: KPIs against the rules' targets, lift over the holdout, the report."""
