"""`python -m engage_cli`: the `engage` command."""

import sys

from engage_cli.main import main

sys.exit(main())
