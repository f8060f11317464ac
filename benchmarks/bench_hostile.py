"""Peak memory and time of one DI request against hostile answers, against an honest floor.

    uv run python benchmarks/bench_hostile.py              # 1 GiB gzip bomb, 5 s drip, 3 runs
    uv run python benchmarks/bench_hostile.py --repeat 5 --drip-deadline 3

A server on 127.0.0.1 answers (a) a 1 GiB single-member gzip bomb (~1 MB on the wire) and
(b) a body dripping one byte every 5 s. Each case runs the real DIClient in its own process, so
its peak RSS (ru_maxrss) is its own, and prints min/median/max over ``--repeat`` runs:

* **floor**: a process that imports di_archiver and reads one small page from the same server
  (what any run costs before a hostile byte arrives);
* **bomb**: the same client reading the bomb page: must fail with a clear error and stay under
  the 256 MB the issue allows (the Lambda has 512 MB);
* **drip**: must end by the request deadline (``--drip-deadline`` seconds) rather than after
  the body's length x 5 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIB = 1024 * 1024
START_NS = 1_700_000_000 * 1_000_000_000
END_NS = START_NS + 3_600 * 1_000_000_000
ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
SMALL = b'[{"id":"a","service":"directory","timestamp":"2023-11-14T22:13:21Z"}]'


def single_member_bomb(expanded_mib: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    parts = [compressor.compress(b"[")]
    parts.extend(compressor.compress(zeros) for _ in range(expanded_mib))
    parts.append(compressor.flush())
    return b"".join(parts)


def serve(bomb: bytes, stop: threading.Event) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.strip("/").split("/")[0]
            if kind == "drip":
                body = SMALL
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                for byte in body:
                    if stop.wait(5.0):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up at its deadline, as it should
                        return
                return
            body, headers = (bomb, {"Content-Encoding": "gzip"}) if kind == "bomb" else (SMALL, {})
            self.send_response(200)
            for name, value in {**headers, "X-Result-Count": "1", "X-Limit": "100"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            return  # a client that hangs up on a bomb or a drip is the expected outcome

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def one_request(base_url: str, deadline: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from di_archiver.adapters.di_auth import ApiKeyCredentials
    from di_archiver.adapters.di_client import DIClient
    from di_archiver.adapters.retry import RetryPolicy
    from di_archiver.errors import ArchiverError

    client = DIClient(
        base_url=base_url,
        credentials=ApiKeyCredentials(api_key="bench-key-0123456789"),
        retry=RetryPolicy(max_attempts=1),
        request_timeout=deadline,
        page_limit=100,
    )
    started = time.monotonic()
    outcome = "ok"
    try:
        for _page in client.iter_pages(ORG, START_NS, END_NS):
            pass
    except ArchiverError as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:110]}"
    elapsed = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((elapsed, peak_mb, outcome))


def measure(base_url: str, deadline: float) -> tuple[float, float, str]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=one_request, args=(base_url, deadline, queue))
    process.start()
    result = queue.get(timeout=600)
    process.join()
    return result  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--drip-deadline", type=float, default=10.0)
    args = parser.parse_args()
    built = time.monotonic()
    bomb = single_member_bomb(args.bomb_mib)
    print(
        f"bomb: {len(bomb) / MIB:.2f} MiB on the wire -> {args.bomb_mib} MiB inflated "
        f"(built in {time.monotonic() - built:.1f} s)"
    )
    stop = threading.Event()
    server = serve(bomb, stop)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    cases = {"floor": "/floor", "bomb": "/bomb", "drip": "/drip"}
    for name, path in cases.items():
        runs = [measure(url + path, args.drip_deadline) for _ in range(args.repeat)]
        times = [r[0] for r in runs]
        rss = [r[1] for r in runs]
        print(
            f"{name:5s}  time s min/median/max {min(times):6.2f} {statistics.median(times):6.2f} "
            f"{max(times):6.2f}   peak RSS MB {min(rss):6.1f} {statistics.median(rss):6.1f} "
            f"{max(rss):6.1f}   -> {runs[-1][2]}"
        )
    stop.set()
    server.shutdown()


if __name__ == "__main__":
    main()
