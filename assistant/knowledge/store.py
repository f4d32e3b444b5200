"""Chroma client factory and the layout of the two knowledge-base collections.

* ``literature``: chunks of public medical texts (MedQuAD) and the hospital's own documents.
* ``hospital``: department / doctor / service descriptions of this hospital (bilingual).

Both use cosine distance and our own offline embedding function (the same
:func:`~assistant.knowledge.embeddings.get_embedder` as the ingest and the retriever; opening
a collection for writing exports the model to ONNX first, so later queries run without
torch). Collection metadata
records the embedding model, the chunking parameters and a ``revision`` that every ingest
changes (the BM25 cache uses it to notice changes cheaply).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Literal

from assistant.errors import ConfigError, DataError
from assistant.settings import Settings

logger = logging.getLogger(__name__)

CollectionName = Literal["literature", "hospital"]
COLLECTIONS: tuple[str, ...] = ("literature", "hospital")
SCHEMA_VERSION = 1
_DESCRIPTIONS = {
    "literature": "Public medical literature (MedQuAD, CC BY 4.0) and hospital documents",
    "hospital": "Hospital departments, doctors and services (bilingual)",
}

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()
_GENERATION = [0]  # bumped by every write of this process (retrievers re-read state then)


def write_generation() -> int:
    """A counter this process increments on every collection metadata change or drop;
    :class:`~assistant.knowledge.retrieval.Retriever` re-reads a collection's state when
    it moved, so an ingest is seen at once in the same process."""
    return _GENERATION[0]


def _bump_generation() -> None:
    with _LOCK:
        _GENERATION[0] += 1


def get_client(settings: Settings) -> Any:
    """The Chroma client for ``settings`` (one per index directory / URL per process).

    Args:
        settings: ``chroma_url`` (``http://host:port``) selects an ``HttpClient``;
            otherwise an embedded ``PersistentClient`` at ``settings.resolved_index_dir``
            (created if missing). Telemetry is always off.

    Returns:
        A ``chromadb`` client (``ClientAPI``).

    Raises:
        ConfigError: malformed ``chroma_url`` or an index directory that cannot be created.
        DataError: the server at ``chroma_url`` cannot be reached.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    key = settings.chroma_url or str(settings.resolved_index_dir.resolve())
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if settings.chroma_url:
            from urllib.parse import urlparse

            url = urlparse(settings.chroma_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigError(f"chroma_url={settings.chroma_url}: expected http://host:port")
            try:
                client = chromadb.HttpClient(
                    host=url.hostname,
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    settings=chroma_settings,
                )
            except Exception as exc:  # chromadb raises plain ValueError/ConnectionError
                raise DataError(f"cannot reach Chroma at {settings.chroma_url}: {exc}") from exc
        else:
            path = settings.resolved_index_dir
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"index directory {path}: {exc}") from exc
            client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        _CLIENTS[key] = client
        return client


def forget_client(settings: Settings) -> None:
    """Drop the cached client of ``settings`` (tests, or after deleting an index folder)."""
    key = settings.chroma_url or str(settings.resolved_index_dir.resolve())
    with _LOCK:
        _CLIENTS.pop(key, None)


def _check_name(name: str) -> None:
    if name not in COLLECTIONS:
        raise ValueError(f"unknown collection {name!r}; expected one of {COLLECTIONS}")


def open_collection(settings: Settings, name: str, *, create: bool = True) -> Any:
    """Open (or create) a knowledge-base collection with our embedding function.

    Args:
        settings: index location and embedding model.
        name: ``"literature"`` or ``"hospital"``.
        create: create the collection when missing; if False a missing one raises. True
            (the ingest) also makes the ONNX export of the embedding model when it is
            missing and torch is installed (:func:`~assistant.knowledge.embeddings.ensure_onnx_export`).

    Returns:
        The ``chromadb`` ``Collection`` (cosine space, 384-d for MiniLM).

    Raises:
        ValueError: unknown collection name.
        DataError: ``create=False`` and the collection does not exist (run the ingest).
        ConfigError: the collection was built with another embedding model.
        ModelNotFoundError: the embedding model is missing.
    """
    from assistant.knowledge.embeddings import (
        chroma_embedding_function,
        ensure_onnx_export,
        resolve_model_dir,
    )

    _check_name(name)
    client = get_client(settings)
    ef = chroma_embedding_function(settings)
    _, model_id = resolve_model_dir(settings)
    if create:
        ensure_onnx_export(settings)  # the writer loads torch anyway; queries then skip it
        metadata = {
            "kb_schema": SCHEMA_VERSION,
            "description": _DESCRIPTIONS[name],
            "embedding_model": model_id,
            "revision": uuid.uuid4().hex,
        }
        collection = client.get_or_create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=metadata,
            embedding_function=ef,
        )
    else:
        try:
            collection = client.get_collection(name, embedding_function=ef)
        except Exception as exc:  # chromadb.errors.NotFoundError / ValueError by version
            where = settings.chroma_url or settings.resolved_index_dir
            raise DataError(
                f"knowledge base collection '{name}' not found in {where}: run the ingest first"
            ) from exc
    built_with = (collection.metadata or {}).get("embedding_model")
    if built_with and built_with != model_id:
        raise ConfigError(
            f"collection '{name}' was built with embedding model {built_with} but the settings "
            f"select {model_id}: re-run the ingest with rebuild=True (or restore the setting)"
        )
    return collection


def drop_collection(settings: Settings, name: str) -> bool:
    """Delete a collection if it exists. Returns True when one was deleted."""
    _check_name(name)
    from chromadb.errors import NotFoundError

    client = get_client(settings)
    _bump_generation()
    try:
        client.delete_collection(name)
    except (NotFoundError, ValueError):  # ValueError: older chromadb "does not exist"
        return False
    return True


def update_metadata(collection: Any, **entries: Any) -> dict[str, Any]:
    """Merge ``entries`` into a collection's metadata (Chroma replaces it as a whole).

    Returns:
        The new metadata dict.
    """
    metadata = dict(collection.metadata or {})
    metadata.update({k: v for k, v in entries.items() if v is not None})
    collection.modify(metadata=metadata)
    _bump_generation()
    return metadata


def bump_revision(collection: Any) -> str:
    """Give the collection a new random ``revision`` (marks its contents as changed)."""
    revision = uuid.uuid4().hex
    update_metadata(collection, revision=revision)
    return revision


def sanitize_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Make a metadata dict storable in Chroma.

    Scalars (str, int, float, bool) are kept, None dropped, lists of scalars of one type
    kept (Chroma >= 1.5 stores them; ``$contains`` filters on them), other values
    (dicts, mixed lists) stored as their ``str``. Keys are made strings.

    Returns:
        A new flat dict.
    """
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        key = str(key)
        if isinstance(value, (str, bool, int, float)):
            out[key] = value
        elif isinstance(value, (list, tuple)):
            items = [v for v in value if v is not None]
            kinds = {type(v) for v in items}
            if items and len(kinds) == 1 and kinds <= {str, int, float, bool}:
                out[key] = list(items)
            elif items:
                out[key] = "; ".join(str(v) for v in items)
        else:
            out[key] = str(value)
    return out
