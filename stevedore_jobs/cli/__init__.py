"""The `stevedore` command, by concern: parser (arguments and main), session (the API and
printing every command shares), tasks, runs, results, logs."""
from stevedore_jobs.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
