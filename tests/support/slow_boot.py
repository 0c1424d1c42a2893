"""A module whose import never finishes in time: preloading it keeps a pool worker
booting (used to show a system shuts down without waiting for it)."""

import time

time.sleep(120)
