#!/bin/sh
# As the official image: Node-RED with the user directory /data, the flow file $FLOWS,
# then the container's command (e.g. --settings FILE).
exec node $NODE_OPTIONS /usr/src/node-red/node_modules/node-red/red.js --userDir /data "$FLOWS" "$@"
