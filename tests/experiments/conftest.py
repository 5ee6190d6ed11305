"""The experiments live next to the package, not in it: make the repository root importable
(``python -m pytest`` does this already, a bare ``pytest`` does not)."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
