import os
import sys
from pathlib import Path

# Make tests/<area>/ helper modules (e.g. tests/gen/reference.py) importable by name.
for sub in ("gen", "gen/plan", "hw", "sim", "boards"):
    p = Path(__file__).parent / sub
    if p.is_dir() and str(p) not in sys.path:
        sys.path.insert(0, str(p))

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

try:
    from hypothesis import settings
    settings.register_profile("ci", deadline=None, print_blob=True)
    settings.register_profile("dev", deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")
except ImportError:  # pragma: no cover
    pass
