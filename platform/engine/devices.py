"""Which GPUs a worker owns: ``CUDA_VISIBLE_DEVICES`` (else nvidia-smi's list) split into
groups of ``devices_per_trial`` (``trainer.devices``), one group per worker; nothing is pinned on
the CPU or without CUDA."""
from __future__ import annotations

import os
import subprocess

from nasforge.platform.errors import ConfigError


def visible_gpus() -> list[str]:
    """The GPUs this process may use (entries of CUDA_VISIBLE_DEVICES, else nvidia-smi's list)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def assign_devices(cfg, workers: int, devices_per_trial: int | None,
                   gpus: list[str] | None = None) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES per worker (None: leave the environment as it is)."""
    if cfg.trainer.accelerator not in ("auto", "gpu", "cuda"):
        return [None] * workers
    gpus = visible_gpus() if gpus is None else gpus
    if not gpus:
        return [None] * workers
    per = devices_per_trial or cfg.trainer.devices
    if per > len(gpus):
        raise ConfigError(f"--devices-per-trial {per}: only {len(gpus)} GPU(s) visible ({','.join(gpus)})")
    if workers * per > len(gpus):
        if devices_per_trial:
            raise ConfigError(f"--workers {workers} x --devices-per-trial {per} needs {workers * per} GPUs; "
                              f"{len(gpus)} visible ({','.join(gpus)})")
        # no explicit request: workers share the GPUs round-robin
        return [",".join(gpus[(i * per + j) % len(gpus)] for j in range(per)) for i in range(workers)]
    return [",".join(gpus[i * per:(i + 1) * per]) for i in range(workers)]
