"""Process environment the archiver runs with: the stack sets it on the Lambda function, the
benchmark on the process it measures, so the figures describe what is deployed."""

# Pages are parsed on a fetch thread while the main thread encodes buckets. glibc would give each
# thread its own malloc arena and, after the first large free, raise its mmap threshold, so later
# multi-MB page buffers come from those arenas and stay resident. Two arenas and a fixed
# threshold return page buffers to the OS when freed (measured: about 35 MB less peak RSS).
ALLOCATOR_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}
