"""``python -m paddle_binbert.length_adaptive.search`` = ``paddle-binbert search-length``."""

import sys

from .cli import main

sys.exit(main())
