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

Metrics: recall@5 (a hit among the first 5 chunks) and MRR@10 (reciprocal rank of the
first hit among 10 chunks, 0 when none).

Usage::

    python eval/retrieval/run_retrieval_eval.py [--sample 1000] [--seed 13] [--out FILE]

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

    params = ChunkingParams()
    return {
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
    args = parser.parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
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
