"""``fkd-hf demo``: FKD end to end on this machine, as a list of stages that call the library."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "config": ["DemoConfig"],
        "run": ["DemoResult", "run_demo"],
    },
)
