"""citystream's engine: build a ``Dataflow``, run it with an executor.

from engine import Dataflow, InlineExecutor, col
from operators import Tumbling, agg
"""

from engine.dataflow import Dataflow, Stream
from engine.errors import CitystreamError, JobFailed, OptionError, PlanError
from engine.executor import Executor, InlineExecutor, JobResult
from engine.expr import call, col, fn, lit
from engine.operator import Collector, Operator, Sink
from engine.plan import PhysicalPlan, build_plan
from engine.sources import GeneratorSource, Source, TableSource

__all__ = [
    "Dataflow",
    "Stream",
    "InlineExecutor",
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
