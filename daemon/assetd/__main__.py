"""``python -m assetd``."""

import sys

from assetd.cli import main

sys.exit(main())
