"""`python -m ganforge ...`: the same as the `ganforge` command."""

import sys

from ganforge.cli import main

if __name__ == "__main__":
    sys.exit(main())
