"""``python -m asna_metric`` runs the command line."""

import sys

from asna_metric.cli import main

sys.exit(main())
