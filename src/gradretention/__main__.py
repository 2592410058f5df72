"""``python -m gradretention``: the command line (see :mod:`gradretention.cli`)."""

import sys

from gradretention.cli import main

# Guarded: process-pool workers import the main module again and must not re-run the CLI.
if __name__ == "__main__":
    sys.exit(main())
