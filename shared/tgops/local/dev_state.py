"""What a running `tgops dev` started, for the commands run beside it (`tgops panel ...`).

`tgops dev` writes the TGOPS_* values of its embedded parts (database URL, fake panel URL and key...) to
`<data_dir>/dev.json` and removes the file when it stops; a command run in the same folder reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_FILE = "dev.json"


def write_dev_state(data_dir: Path, values: dict[str, str]) -> None:
    path = data_dir / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    os.chmod(path, 0o600)


def clear_dev_state(data_dir: Path) -> None:
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def read_dev_state(data_dir: Path) -> dict[str, str]:
    """The values of the `tgops dev` running from this folder; empty when none is."""
    try:
        values = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}
