"""A module whose import ends the process: preloading it kills every pool worker."""

import os

os._exit(3)
