"""Scoring a customer: health (five weighted categories), churn risk and its factors, support
sentiment, expansion, and the assessment that brings them together for a decision."""
