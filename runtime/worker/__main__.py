"""``python -m actors_runtime.worker``: a seed-protocol worker (see ``seed_entry``)."""

import sys

from .seed_entry import main

sys.exit(main())
