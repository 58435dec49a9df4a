"""Tokenizer backends. Importing this package registers the built-in ones.

Backends that need optional heavy libraries (torch / transformers, TF) import
them inside ``load()``, so that registering them costs nothing.
"""

from audiolm_t5x.pipelines.tokenizers import base  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import logmel  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import lyra  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import w2v_bert  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import wav2vec2  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import dac  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import encodec  # noqa: F401
from audiolm_t5x.pipelines.tokenizers import saved_model  # noqa: F401
