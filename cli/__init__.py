"""The command-line interface behind starter.py, one module per command group."""
