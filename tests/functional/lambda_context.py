"""The Lambda context the handler tests invoke with (only the remaining time matters to it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeContext:
    function_name: str = "di-archiver"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:di-archiver"
    aws_request_id: str = "req-1"
    remaining_ms: int = 900_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
