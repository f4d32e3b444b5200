"""JSON-schema-constrained decoding with xgrammar.

xgrammar compiles a JSON schema into a token-level grammar and masks the logits of
every decoding step, so even a 135M model can only emit text that parses and matches
the schema. Compiling is the slow part, so compiled grammars are cached per
(tokenizer, schema) in an LRU.

Termination is guaranteed by the schema, not the model: callers give string fields a
``max_length`` and lists a ``max_length`` so the shortest completion is bounded.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel

_LOCK = threading.Lock()


def schema_text(schema: type[BaseModel] | dict[str, Any]) -> str:
    """Canonical JSON text of a pydantic model's or a dict's JSON schema."""
    raw = schema.model_json_schema() if isinstance(schema, type) else schema
    return json.dumps(raw, sort_keys=True, ensure_ascii=False)


class GrammarCache:
    """Compiles and caches grammars for one tokenizer.

    Args:
        tokenizer: a Hugging Face tokenizer.
        vocab_size: the model's output vocabulary size (``model.config.vocab_size``),
            which may exceed ``len(tokenizer)`` because of padding.
        max_entries: LRU size.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, max_entries: int = 64) -> None:
        import xgrammar as xgr

        self._info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgr.GrammarCompiler(self._info, max_threads=2, cache_enabled=True)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._max = max_entries
        self.compiles = 0

    def compiled(self, schema: type[BaseModel] | dict[str, Any]) -> Any:
        """Return the compiled grammar for ``schema`` (compiling on first use)."""
        key = schema_text(schema)
        with _LOCK:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        grammar = self._compiler.compile_json_schema(
            key, any_whitespace=False, strict_mode=True
        )
        with _LOCK:
            self.compiles += 1
            self._cache[key] = grammar
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return grammar

    def logits_processor(self, schema: type[BaseModel] | dict[str, Any]) -> Any:
        """A fresh (single-use) transformers logits processor for ``schema``."""
        import xgrammar as xgr

        return xgr.contrib.hf.LogitsProcessor(self.compiled(schema))
