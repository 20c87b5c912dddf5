"""The machine a benchmark ran on, for its report (imports no TensorFlow)."""

import os
import platform


def cpu_model():
    """The processor's model name (`/proc/cpuinfo`, else `platform`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device_type="CPU"):
    """`"CPU (<model>, <n> cores)"` for a CPU; other device types as they are."""
    if device_type != "CPU":
        return device_type
    return f"CPU ({cpu_model()}, {os.cpu_count()} cores)"
