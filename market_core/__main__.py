"""``python -m market_core market.json [-o result.json]`` (same as ``smartnet clear``)."""

import sys

from market_core.cli import main

sys.exit(main())
