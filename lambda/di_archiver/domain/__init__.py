"""Domain logic: plain Python that knows nothing of Lambda, boto3 or httpx."""
