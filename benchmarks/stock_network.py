"""T5X's stock decoder-only network, for comparisons (tests and benchmarks).

``load()`` returns T5X's ``t5x/examples/decoder_only/network.py`` loaded from
T5X's source tree by path (the network and its ``layers.py`` are pure Flax):
``$STOCK_T5X_DIR`` (a folder holding ``t5x/examples/decoder_only/``) or the
installed T5X's location. This works on GPU hosts without TensorFlow or T5X's
other dependencies. Nothing of T5X is copied into this project.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

_PACKAGE = "t5x.examples.decoder_only"
_PRIVATE = "_stock_t5x_decoder_only_network"


def _source_dir() -> str:
  root = os.environ.get("STOCK_T5X_DIR")
  if root:
    return os.path.join(root, "t5x", "examples", "decoder_only")
  spec = importlib.util.find_spec("t5x")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("T5X not found: install it or set STOCK_T5X_DIR to a "
                      "folder holding t5x/examples/decoder_only/")
  return os.path.join(list(spec.submodule_search_locations)[0], "examples",
                      "decoder_only")


def load() -> types.ModuleType:
  """T5X's ``network`` module (its ``layers`` attribute is T5X's layers).

  Loaded from the source files under private module names, so that importing
  it never runs ``t5x/__init__.py`` (TensorFlow, seqio, ...) and never puts a
  second copy of T5X's modules under their own names.
  """
  if _PRIVATE in sys.modules:
    return sys.modules[_PRIVATE]
  folder = _source_dir()
  names = ("t5x", "t5x.examples", _PACKAGE, f"{_PACKAGE}.layers")
  saved = {n: sys.modules.get(n) for n in names}
  # While network.py runs, its `from t5x.examples.decoder_only import layers`
  # must find the layers loaded here: empty parent packages stand in.
  for name in names[:3]:
    package = types.ModuleType(name)
    package.__path__ = []
    sys.modules[name] = package
  try:
    loaded = {}
    for stem in ("layers", "network"):
      spec = importlib.util.spec_from_file_location(
          f"{_PACKAGE}.{stem}", os.path.join(folder, f"{stem}.py"))
      module = importlib.util.module_from_spec(spec)
      sys.modules[spec.name] = module
      setattr(sys.modules[_PACKAGE], stem, module)
      spec.loader.exec_module(module)
      loaded[stem] = module
  finally:
    for name, module in saved.items():
      if module is None:
        sys.modules.pop(name, None)
      else:
        sys.modules[name] = module
    sys.modules.pop(f"{_PACKAGE}.network", None)
  sys.modules[_PRIVATE] = loaded["network"]
  return loaded["network"]
