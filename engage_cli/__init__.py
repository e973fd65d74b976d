"""Engage's tooling: the `engage` command, the local launcher and the demo.

A gRPC client of the services beside them, not part of them: no service and nothing in the
runtime (`engage/`) imports this package, and it imports no service.
"""
