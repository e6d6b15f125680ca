"""citystream's engine: build a ``Dataflow``, run it with an executor (``InlineExecutor`` here,
``RayExecutor``, imported on first use, on Ray).

from engine import Dataflow, InlineExecutor, col
from operators import Tumbling, agg
"""

from typing import TYPE_CHECKING

from engine.channels import ChannelOptions
from engine.dataflow import Dataflow, Stream
from engine.errors import CitystreamError, JobFailed, OptionError, PlanError
from engine.executor import Executor, InlineExecutor, JobResult
from engine.expr import call, col, fn, lit
from engine.operator import Collector, Operator, Sink
from engine.plan import PhysicalPlan, build_plan
from engine.sources import GeneratorSource, Source, TableSource

if TYPE_CHECKING:
    from engine.ray_executor import ActorOptions, Colocation, RayExecutor, RayJob

__all__ = [
    "Dataflow",
    "Stream",
    "InlineExecutor",
    "ChannelOptions",
    "RayExecutor",
    "RayJob",
    "ActorOptions",
    "Colocation",
    "Executor",
    "JobResult",
    "col",
    "lit",
    "call",
    "fn",
    "Operator",
    "Collector",
    "Sink",
    "Source",
    "TableSource",
    "GeneratorSource",
    "PhysicalPlan",
    "build_plan",
    "CitystreamError",
    "PlanError",
    "OptionError",
    "JobFailed",
]


def __getattr__(name: str) -> object:
    # The Ray executor imports Ray; load it only when it is asked for.
    if name in ("RayExecutor", "RayJob", "ActorOptions", "Colocation"):
        from engine import ray_executor

        return getattr(ray_executor, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
