"""Starting and reaping `_train_worker.py` subprocesses (resume, multi-worker)."""

import os
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(__file__), "_train_worker.py")
TIMEOUT_S = 240


def start_worker(args, env_extra=None):
    """Starts the training worker; `TF_CONFIG` only if `env_extra` sets it."""
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, WORKER, *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_all(procs, timeout=TIMEOUT_S):
    """Waits for every process (bounded), kills stragglers, returns outputs."""
    outputs = []
    try:
        for p in procs:
            output, _ = p.communicate(timeout=timeout)
            outputs.append(output)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outputs
