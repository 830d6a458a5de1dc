"""Shared by the Python client scripts: the server's address and token from the environment,
and `step`, which runs one client operation and prints `STEP <name> ok` or
`STEP <name> FAIL <reason>` for tests/clients.rs to judge. A step that needs an earlier
step's result names it in `needs`; when that one failed the step is reported as failed too."""

import json
import os
import sys
import traceback

ORG_URL = os.environ["SMSCTX_ORG_URL"]  # https://127.0.0.1:PORT
API_URL = ORG_URL + "/api/data/v9.2/"
TOKEN = os.environ["SMSCTX_TOKEN"]
TAG = os.environ.get("SMSCTX_TAG", "run")
_failed = set()
results = {}


def step(name, needs=()):
    def run(fn):
        missing = [n for n in needs if n in _failed or n not in results]
        if missing:
            _failed.add(name)
            print(f"STEP {name} FAIL needs {','.join(missing)}", flush=True)
            return None
        try:
            results[name] = fn()
            print(f"STEP {name} ok", flush=True)
        except Exception as e:  # the client's own exception, whatever its type
            _failed.add(name)
            reason = " ".join(f"{type(e).__name__}: {e}".split())[:600]
            print(f"STEP {name} FAIL {reason}", flush=True)
            traceback.print_exc(file=sys.stderr)
        return results.get(name)

    return run


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def emit_outcome(**values):
    """What the Rust test then checks in the store itself."""
    print("OUTCOME " + json.dumps(values), flush=True)
