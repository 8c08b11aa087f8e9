"""The crossbar router: configuration built from settings, run as a child process."""
