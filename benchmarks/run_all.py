"""Run every ``benchmarks/bench_*.py`` in turn and print their tables.

    python benchmarks/run_all.py [--only NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="run only benchmarks whose file name contains this")
    args = p.parse_args(argv)
    here = Path(__file__).resolve().parent
    status = 0
    for path in sorted(here.glob("bench_*.py")):
        if args.only and args.only not in path.name:
            continue
        print(f"\n=== {path.name} ===", flush=True)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(path)], cwd=here.parent)
        print(f"({path.name}: {time.perf_counter() - t0:.1f} s, exit {r.returncode})", flush=True)
        status = status or r.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
