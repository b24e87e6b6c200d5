"""taskdeck's core: the task registry, its daemon, wire protocol and client library."""

__version__ = "0.1.0"
