"""``python -m telcoplan.cli``: the command line."""

from telcoplan.cli import main

main()
