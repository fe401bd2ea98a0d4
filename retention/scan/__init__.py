"""The portfolio scan: every customer scored page by page, journeys started for the at-risk.

`models` (what the PortfolioScan workflow and its activities exchange), `scoring` (a page
scored, decided and recorded), `starting` (journeys started through the Temporal client),
`schedule` (the `portfolio-scan` Temporal Schedule).
"""
