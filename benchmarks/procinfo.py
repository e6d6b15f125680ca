"""What the benchmarks read of this machine's processes and of Ray's object store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray


def proc_memory(pid: int) -> dict[str, int] | None:
    """VmRSS, RssAnon, RssFile and RssShmem of a process, in KiB (None if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0])
    return out


def object_store() -> dict[str, Any]:
    """Bytes and objects in this Ray instance's object store, from the raylet's store stats
    (what ``ray memory --stats-only`` prints), plus the object_store_memory resource difference
    (cluster - available), which Ray updates with a lag."""
    from ray._private import internal_api, state

    reply = internal_api.get_memory_info_reply(state.state, timeout_seconds=10.0)
    stats = reply.store_stats
    return {
        "bytes_used": int(stats.object_store_bytes_used),
        "objects": int(stats.num_local_objects),
        "bytes_spilled_total": int(stats.spilled_bytes_total),
        "resource_diff_bytes": int(
            ray.cluster_resources().get("object_store_memory", 0) - ray.available_resources().get("object_store_memory", 0)
        ),
    }
