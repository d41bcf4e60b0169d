"""``python -m deltavault``."""

from deltavault.cli.main import run

run()
