"""``python -m paddle_binbert.serve DIR [options]`` = ``paddle-binbert serve DIR [options]``."""

from .cli import main

raise SystemExit(main())
