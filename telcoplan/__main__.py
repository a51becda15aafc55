"""``python -m telcoplan``: the command line."""

from telcoplan.cli import main

main()
