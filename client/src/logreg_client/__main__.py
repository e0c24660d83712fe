"""``python -m logreg_client``: the ``logreg`` command."""

import sys

from .cli import main

sys.exit(main())
