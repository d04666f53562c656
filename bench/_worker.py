"""One side of the handler benchmark: a persistent process that runs one SDK's handler.

Started by ``bench_handler.py`` under any of its interpreters::

    python bench/_worker.py --sdk ours       # statefun_wsgi from this repository
    python bench/_worker.py --sdk official   # the official ``statefun`` 2.2.2 SDK
    python bench/_worker.py --sdk official3  # the official ``statefun`` 3.3 SDK (handle_sync)
    python bench/_worker.py --sdk oursv3     # statefun_wsgi.v3 (the 3.3 API) running scenarios_v3, handle_sync

It reads commands from stdin, one line each, and answers each with one line on
stdout (``ok ...`` or ``error <text>``); byte payloads follow their line:

    info                      -> ok {"python": ..., "protobuf": ..., "implementation": ...}
    load <scenario> <nbytes>  (then nbytes of request) -> ok
    reply <scenario>          -> ok <nbytes> (then nbytes of the serialized reply)
    run <scenario> <n>        -> ok <elapsed ns for n requests> <minor page faults during them>
    quit                      -> (exits)

Keeping the process alive lets the driver interleave the sides round by round, so
that drifts of the machine hit them alike.
"""

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def load_sdk(name):
    if name == "ours":
        sys.path.insert(0, REPO)
        from statefun_wsgi import RequestReplyHandler, StatefulFunctions

        module = "statefun_wsgi"
    elif name == "oursv3":
        sys.path.insert(0, REPO)
        import statefun_wsgi.v3

        sys.modules["statefun"] = statefun_wsgi.v3  # scenarios_v3 as written for the official SDK
        from statefun_wsgi.v3 import RequestReplyHandler, StatefulFunctions

        module = "statefun_wsgi.v3"
    elif name in ("official", "official3"):
        from statefun import RequestReplyHandler, StatefulFunctions

        module = "statefun"
    else:
        raise SystemExit("unknown --sdk %r" % name)
    sys.path.insert(0, HERE)
    if name in ("official3", "oursv3"):
        import scenarios_v3 as scenarios
    else:
        import scenarios

    functions = StatefulFunctions()
    scenarios.register(functions)
    handler = RequestReplyHandler(functions)
    if name in ("official3", "oursv3"):
        return handler.handle_sync, sys.modules[module]  # its synchronous entry: asyncio.run per request
    return handler, sys.modules[module]


def info(sdk_name, sdk_module):
    import google.protobuf
    from google.protobuf.internal import api_implementation

    return {
        "sdk": sdk_name,
        "sdk_module": sdk_module.__name__,
        "sdk_file": getattr(sdk_module, "__file__", None),
        "python": platform.python_version(),
        "executable": sys.executable,
        "protobuf": google.protobuf.__version__,
        "implementation": api_implementation.Type(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", required=True, choices=["ours", "official", "official3", "oursv3"])
    args = parser.parse_args()

    # Only this process's protocol goes to the real stdout; stray prints go to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer

    handler, sdk_module = load_sdk(args.sdk)
    requests = {}
    perf_counter_ns = time.perf_counter_ns

    def answer(line, payload=b""):
        out.write(line.encode("utf-8") + b"\n" + payload)

    while True:
        line = stdin.readline()
        if not line:
            return
        words = line.decode("utf-8").split()
        if not words:
            continue
        command = words[0]
        try:
            if command == "quit":
                return
            elif command == "info":
                answer("ok " + json.dumps(info(args.sdk, sdk_module)))
            elif command == "load":
                name, size = words[1], int(words[2])
                data = stdin.read(size)
                if len(data) != size:
                    raise EOFError("short request payload for %s" % name)
                requests[name] = data
                answer("ok")
            elif command == "reply":
                reply = handler(requests[words[1]])
                answer("ok %d" % len(reply), reply)
            elif command == "run":
                request, n = requests[words[1]], int(words[2])
                call = handler
                gc.collect()
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = perf_counter_ns()
                for _ in range(n):
                    call(request)
                elapsed = perf_counter_ns() - start
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
                answer("ok %d %d" % (elapsed, faults))
            else:
                raise ValueError("unknown command %r" % command)
        except Exception as exc:
            traceback.print_exc()
            answer("error %s: %s" % (type(exc).__name__, str(exc).replace("\n", " ")))


if __name__ == "__main__":
    main()
