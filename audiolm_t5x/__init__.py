"""AudioLM training system on Google's ML stack: Beam, SeqIO and T5X.

The project's three parts are the subpackages ``audiolm_t5x.pipelines`` (Beam
tokenization jobs), ``audiolm_t5x.tasks`` (SeqIO tasks) and
``audiolm_t5x.t5x_configs`` (gin files). In the source tree they live at the
repository root as ``pipelines/``, ``tasks/`` and ``t5x_configs/``; an
installed wheel maps them under this package (see ``pyproject.toml``), so that
the generic names ``pipelines`` and ``tasks`` never sit at the top of
site-packages where another distribution could shadow them.

In a source checkout (editable install, or the repository root on
``sys.path``) this package's search path is extended to the repository root,
so ``audiolm_t5x.pipelines`` resolves to ``<repo>/pipelines``.
"""

import os as _os

__version__ = "0.1.0"

_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "pipelines")) and _os.path.isfile(
    _os.path.join(_root, "pipelines", "__init__.py")
):
  __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821
