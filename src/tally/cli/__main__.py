"""`python -m tally.cli ...`: the `tally` command."""

import sys

from tally.cli.main import main

sys.exit(main())
