"""The ``structlora`` command line (filled in by the end-to-end work)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print("structlora: training from the command line is not available yet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
