"""Ray as the engine of the heavy steps (issue 15); Dagster stays the orchestrator.

Plain modules (no Dagster import), each loading ``ray`` only when called, so the package
imports without the optional ``ray`` extra and ``make demo`` never needs it.
"""

ENGINE_RAY = "ray"
ENGINE_IN_PROCESS = "in-process"
