"""`python -m gateway` is the `gateway` command."""

import sys

from gateway.cli.main import main

sys.exit(main())
