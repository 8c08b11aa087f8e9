"""The hub: the registry of DataNodeServers (sisock's hub, restart-safe)."""
