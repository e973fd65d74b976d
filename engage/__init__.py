"""Engage's shared runtime: the only code every service imports."""
