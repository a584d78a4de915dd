#!/bin/sh
# Checks the decision script (lua/*.lua concatenated as the build does) on
# a throwaway redis-server: admit, deny, peek, block, multi-limit, layered,
# stored values, refunds, batches. The checks live in test_lua.py since
# protocol v3 (src/store.h) sends each request as one binary argument.
# Usage: tests/integration/lua_check.sh   (exit 0 = all passed)
exec python3 "$(dirname "$0")/run.py" -k test_lua
