#!/bin/sh
# Install Node-RED 4 (headless test runs of docker/node-red/flows.json) into .cache/node-red/.
# Node-RED 5 needs Node >= 22.9; 4.x runs on Node 18 and 20.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir="$repo/.cache/node-red"
if [ -f "$dir/node_modules/node-red/red.js" ]; then
    exit 0
fi
mkdir -p "$dir"

cd "$dir"
npm install --no-audit --no-fund --omit=dev --loglevel=error node-red@4
