#!/usr/bin/env bash
# Validates CSDL XML documents ($metadata) against the OASIS OData CSDL XML schemas (edmx.xsd and
# edm.xsd, version 4.01, which also accepts 4.0 documents). The schemas come from the npm package
# `odata-csdl` (the OASIS TC's own converter, which ships them); the validator is Python's lxml.
#
#   scripts/validate-csdl.sh metadata.xml [more.xml ...]
#
# Save a document first: `cargo run --example csdl -- --annotations > metadata.xml`, or from a
# running server, `curl -s "$ROOT/\$metadata?annotations=true" > metadata.xml`.
set -euo pipefail
[ "$#" -ge 1 ] || { echo "usage: $0 FILE.xml..." >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent odata-csdl >/dev/null && tar xzf odata-csdl-*.tgz)
python3 -c 'import lxml' 2>/dev/null || pip install --quiet lxml
python3 - "$work/package/schemas/edmx.xsd" "$@" <<'PY'
import sys
from lxml import etree
schema = etree.XMLSchema(etree.parse(sys.argv[1]))
failed = 0
for path in sys.argv[2:]:
    if schema.validate(etree.parse(path)):
        print(f"{path}: valid")
    else:
        failed += 1
        print(f"{path}: INVALID")
        for error in list(schema.error_log)[:20]:
            print(f"  line {error.line}: {error.message}")
sys.exit(1 if failed else 0)
PY
