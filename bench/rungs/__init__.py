"""Rungs: the one classifier protocol (``protocol``), the base of wrappers (``wrapper``) and the registry that
holds everything declared about each rung (``registry``)."""
