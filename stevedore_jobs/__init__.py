"""Stevedore: the command-line tools (host mode, migrations, the CLI)."""
