"""Shim for Beam's ``--setup_file`` (Dataflow); the build is in pyproject.toml."""

import setuptools

setuptools.setup()
