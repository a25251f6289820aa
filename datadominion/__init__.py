"""DataDominion shared core: config models, month arithmetic, planning, ports and local adapters."""

__version__ = "0.1.0"
