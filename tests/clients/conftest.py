"""Client tests import the client from its source tree (clients/python/src) unless it is
installed (`pip install -e clients/python`), so they run without a separate install step."""

from __future__ import annotations

import sys
from pathlib import Path

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"

try:
    import honcho_grpc_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(CLIENT_SRC))
