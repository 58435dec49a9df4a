"""AudioLM training system on Google's ML stack: Beam, SeqIO and T5X.

The project's three parts are the subpackages ``audiolm_t5x.pipelines`` (Beam
tokenization jobs), ``audiolm_t5x.tasks`` (SeqIO tasks) and
``audiolm_t5x.t5x_configs`` (gin files). These are the canonical module names:
an installed wheel maps the folders under this package (see
``pyproject.toml``), so that the generic names ``pipelines`` and ``tasks``
never sit at the top of site-packages where another distribution could shadow
them.

One file, one module. In a source checkout the folders live at the repository
root as ``pipelines/``, ``tasks/`` and ``t5x_configs/``, and users also reach
them by those top-level names (``python -m pipelines.tokenize_corpus``,
``import tasks.audiolm``). Without care Python would load each file twice,
once per name, and registries (seqio's task registry, the tokenizer registry,
gin's configurables) would see two copies. So, in a source checkout only:

- this package's search path is extended to the repository root, so
  ``audiolm_t5x.pipelines`` resolves to ``<repo>/pipelines``;
- :class:`_AliasFinder`, installed at the front of ``sys.meta_path``, answers
  every import of ``pipelines[.x]``, ``tasks[.x]`` or ``t5x_configs[.x]`` with
  the already-imported (or now imported) module ``audiolm_t5x.<same name>``:
  both names are then one module object;
- each top-level folder's ``__init__.py``, when Python imports it under its
  generic name before this package was imported (the finder is not installed
  yet), imports ``audiolm_t5x`` and replaces itself in ``sys.modules`` with
  the canonical package (:func:`alias_top_level`).

``python -m pipelines.X`` runs X's code as ``__main__`` (through the finder's
``get_code``); command modules are thin (flags in, one library call), so that
copy defines nothing a registry could see twice.
"""

import importlib
import importlib.abc
import importlib.util
import os as _os
import sys as _sys

__version__ = "0.1.0"

# Subpackages that a source checkout also offers under their top-level names.
ALIASED = ("pipelines", "tasks", "t5x_configs")

_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
SOURCE_TREE = (not _os.path.isdir(_os.path.join(_here, "pipelines")) and
               _os.path.isfile(_os.path.join(_root, "pipelines",
                                             "__init__.py")))


class _AliasLoader(importlib.abc.Loader):
  """Hands back the canonical module for a top-level alias name."""

  def __init__(self, canonical: str, canonical_spec):
    self._canonical = canonical
    self._canonical_spec = canonical_spec

  def create_module(self, spec):
    return importlib.import_module(self._canonical)

  def exec_module(self, module):
    # The import system set __spec__ to the alias spec; the module keeps its
    # canonical identity (pickling, reload and tracebacks use it).
    module.__spec__ = self._canonical_spec

  # runpy (``python -m pipelines.X``) runs the canonical file's code.
  def get_code(self, fullname):
    loader = self._canonical_spec.loader
    return loader.get_code(self._canonical)

  def get_source(self, fullname):
    return self._canonical_spec.loader.get_source(self._canonical)

  def is_package(self, fullname):
    return self._canonical_spec.submodule_search_locations is not None

  def get_filename(self, fullname):
    return self._canonical_spec.origin


class _AliasFinder(importlib.abc.MetaPathFinder):
  """``pipelines.x`` -> ``audiolm_t5x.pipelines.x`` (same module object)."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname.split(".")[0] not in ALIASED:
      return None
    canonical = f"{__name__}.{fullname}"
    module = _sys.modules.get(canonical)
    canonical_spec = (getattr(module, "__spec__", None) if module is not None
                      else importlib.util.find_spec(canonical))
    if canonical_spec is None:
      return None
    return importlib.util.spec_from_loader(
        fullname, _AliasLoader(canonical, canonical_spec),
        origin=canonical_spec.origin,
        is_package=canonical_spec.submodule_search_locations is not None)


def _install_finder() -> None:
  if not any(isinstance(f, _AliasFinder) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _AliasFinder())


def alias_top_level(name: str, init_file: str):
  """Called by ``<repo>/<name>/__init__.py`` when imported as ``<name>``.

  Replaces the module being imported with ``audiolm_t5x.<name>`` in
  ``sys.modules`` (Python's import returns what ``sys.modules`` holds when the
  ``__init__`` finishes), so ``name`` and ``audiolm_t5x.name`` are one object.
  """
  canonical = importlib.import_module(f"{__name__}.{name}")
  here = _os.path.dirname(_os.path.abspath(init_file))
  paths = [_os.path.abspath(p) for p in getattr(canonical, "__path__", [])]
  if here not in paths:
    raise ImportError(
        f"{init_file} is imported as {name!r}, but {__name__}.{name} is "
        f"{paths}: another audiolm_t5x shadows this checkout; run from the "
        "checkout's root or uninstall the other copy")
  _sys.modules[name] = canonical
  return canonical


if SOURCE_TREE:
  __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821
  _install_finder()
