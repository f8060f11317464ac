"""di-archiver: exactly-once, long-term archive of JumpCloud Directory Insights events."""

__version__ = "0.1.0"
