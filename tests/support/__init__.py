"""Helpers shared by the end-to-end tests: real HAProxy processes and stand-in NodePorts on loopback."""
