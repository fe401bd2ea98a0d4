"""How the service runs: settings, the Temporal connection and its runtime, schedules,
readiness, metrics, logs, the workflow sandbox, the embedded dev server, and the Temporal
client calls the CLI and `make run` share. Workflows take only metric names from here."""
