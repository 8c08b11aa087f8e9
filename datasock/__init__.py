"""datasock: housekeeping and slow-control data for Grafana, Node-RED and OCS, over WAMP."""

__version__ = "0.1.0"
