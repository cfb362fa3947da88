"""``python -m diffseglung_core.cli`` (used by ``torchrun -m``)."""

import sys

from . import main

sys.exit(main())
