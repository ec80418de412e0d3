"""`python -m ganforge ...`, and so `torchrun --nproc-per-node N -m ganforge train ...`: the ganforge command."""

import sys

from ganforge.cli import main

if __name__ == "__main__":
    sys.exit(main())
