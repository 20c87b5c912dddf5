"""Host-side tuning for several replicas on one machine (glibc malloc)."""

import ctypes
import platform


_M_TOP_PAD = -2  # glibc <malloc.h>


def has_glibc():
    """Whether this process's C library is glibc (which has `mallopt`)."""
    return platform.libc_ver()[0] == "glibc"


def set_malloc_top_pad(num_bytes=64 << 20):
    """Keeps `num_bytes` of free heap memory mapped in every glibc arena.

    Several replicas on one host allocate their tensors from several threads,
    so glibc's malloc serves them from per-thread arenas, and by default it
    gives the free top of each arena's heap back to the kernel after every
    step. The next step faults those pages back in, zero-filled, and the
    unmapping interrupts the other cores (TLB shoot-downs). On a small CPU
    host that kernel work is most of the cost of a second replica on small
    steps (`benchmarks/strategy_overhead.py`, docs/benchmarks.md). A top
    pad makes glibc keep that much free memory per arena instead. One
    device is barely affected;
    tensors on GPUs are not malloc'ed by glibc, but the host side of their
    steps is. `sig_keras.distribute.get_strategy` calls it when it builds a
    strategy of several replicas on CPUs (its `malloc_top_pad` argument).

    Process-wide, like the `MALLOC_TOP_PAD_` environment variable it stands
    for (which only takes effect when set before the process starts); a later
    call replaces the value. Memory held: up to `num_bytes` per arena (glibc
    makes at most 8 per core).

    Args:
        num_bytes: int in [0, 2**31). Bytes of free memory each arena keeps.
            Defaults to 64 MiB; glibc's own default is 128 KiB (`128 << 10`
            restores it).

    Raises:
        ValueError: if `num_bytes` is not an int in [0, 2**31) (mallopt takes
            a C int).
        RuntimeError: if the C library is not glibc (macOS, musl), which has
            no such setting.
    """
    if (
        isinstance(num_bytes, bool)
        or not isinstance(num_bytes, int)
        or not 0 <= num_bytes < 2**31
    ):
        raise ValueError(
            "`num_bytes` must be an int in [0, 2**31) (e.g. 64 << 20); got "
            f"{num_bytes!r}."
        )
    if not has_glibc():
        libc_name, _ = platform.libc_ver()
        raise RuntimeError(
            "set_malloc_top_pad needs glibc's mallopt; this platform's C "
            f"library is {libc_name or 'unknown'}. Its allocator has its own "
            "settings (or preload tcmalloc/jemalloc)."
        )
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if mallopt(_M_TOP_PAD, num_bytes) != 1:
        raise RuntimeError(f"glibc mallopt(M_TOP_PAD, {num_bytes}) failed.")


