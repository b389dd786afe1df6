"""Cold start of the `http_api` Lambda: a fresh interpreter importing its handler, against importing
fastapi + mangum + aws-lambda-powertools + boto3 alone. Goal: ratio <= 1.3.

Each sample is a new Python process timing its own imports (interpreter start-up, the same for both,
is left out). Samples alternate between the two so machine noise hits both alike; medians are reported.
The ratio is of wall-clock times. Beside it, for a shared and noisy machine: the same ratio of the
processes' CPU times (less sensitive to other load) and how many modules each import loads.

    python bench/cold_start.py [--samples 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLER_DIR = ROOT / "functions" / "http_api"

TIMED_IMPORT = """
import sys, time
sys.path.insert(0, {path!r})
loaded = len(sys.modules)
started, started_cpu = time.perf_counter(), time.process_time()
{imports}
print(time.perf_counter() - started, time.process_time() - started_cpu, len(sys.modules) - loaded)
"""
HANDLER_IMPORT = "import app\nassert callable(app.handler)"
BASELINE_IMPORT = "import fastapi, mangum, aws_lambda_powertools, boto3"


def clean_env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TGOPS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # bytecode caches are already warm from the first run
    return env


def time_import(imports: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, modules loaded) of the imports in a fresh interpreter."""
    code = TIMED_IMPORT.format(path=str(HANDLER_DIR), imports=imports)
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env(), cwd=ROOT
    ).stdout
    wall, cpu, modules = output.strip().splitlines()[-1].split()
    return float(wall), float(cpu), int(modules)


def median_ms(samples: list[tuple[float, float, int]], index: int) -> float:
    return statistics.median(sample[index] for sample in samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    samples = parser.parse_args().samples
    time_import(HANDLER_IMPORT)  # warm the OS file cache and bytecode caches for both
    handler, baseline = [], []
    for _ in range(samples):
        handler.append(time_import(HANDLER_IMPORT))
        baseline.append(time_import(BASELINE_IMPORT))
    handler_ms, baseline_ms = median_ms(handler, 0), median_ms(baseline, 0)
    handler_cpu_ms, baseline_cpu_ms = median_ms(handler, 1), median_ms(baseline, 1)
    print(
        json.dumps(
            {
                "benchmark": "cold_start",
                "samples": samples,
                "handler_import_ms_p50": round(handler_ms, 1),
                "baseline_fastapi_mangum_powertools_boto3_import_ms_p50": round(baseline_ms, 1),
                "ratio": round(handler_ms / baseline_ms, 2),
                "goal_ratio_max": 1.3,
                "handler_import_cpu_ms_p50": round(handler_cpu_ms, 1),
                "baseline_import_cpu_ms_p50": round(baseline_cpu_ms, 1),
                "cpu_ratio": round(handler_cpu_ms / baseline_cpu_ms, 2),
                "handler_modules_loaded": handler[-1][2],
                "baseline_modules_loaded": baseline[-1][2],
            }
        )
    )


if __name__ == "__main__":
    main()
