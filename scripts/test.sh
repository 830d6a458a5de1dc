#!/usr/bin/env bash
# Runs every test of the project: unit tests beside the code, and the integration tests that
# start smsctx on port 0 with a temporary database and speak HTTP to it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
