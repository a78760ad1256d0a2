"""Retrieval quality on the LoCoMo development subset (../shared/data/locomo), through the
gRPC API, next to the baselines computed in the same run on the same text.

Each conversation is a workspace, each LoCoMo session a session, each turn a message by its
speaker (the session date as create_time, dia_id in metadata). For every question of
categories 1-4 we call SearchMessages with the question and count which evidence turns are
in the top k: recall@k = |evidence ∩ top-k| / |evidence|, averaged over questions.

    .venv/bin/python -m bench.locomo_retrieval
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc, search_pb2, search_pb2_grpc

from bench.common import ROOT, print_table, server_process, write_json
from honcho_grpc.providers.embeddings import LocalEmbedder

DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo-dev.json"
KS = (5, 10, 20)
PUBLISHED = {"BM25": (0.520, 0.567, 0.627), "dense": (0.374, 0.474, 0.573),
             "RRF(BM25, dense)": (0.452, 0.549, 0.646)}
_STOP_WORDS = ("a an the and or but if of to in on at for with by from is are was were be "
               "been being do does did have has had i you he she it we they me him her us "
               "them my your his its our their this that these those what which who whom "
               "when where why how not no so as than too very can will just")
STOP = frozenset(_STOP_WORDS.split())


def peer_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def parse_date(text: str) -> datetime:
    return datetime.strptime(text, "%I:%M %p on %d %B, %Y")


def turns(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """Every turn with its session number, time and the text we store."""
    conv = sample["conversation"]
    out = []
    n = 1
    while f"session_{n}" in conv:
        when = parse_date(conv[f"session_{n}_date_time"])
        for t in conv[f"session_{n}"]:
            content = t["text"]
            if t.get("blip_caption"):
                content += f" [shares a photo: {t['blip_caption']}]"
            out.append({"session": n, "when": when, "speaker": t["speaker"],
                        "dia_id": t["dia_id"], "content": content})
        n += 1
    return out


def questions(sample: dict[str, Any]) -> list[dict[str, Any]]:
    qs = []
    for q in sample["qa"]:
        if q["category"] == 5:
            continue
        evidence = {e.strip() for ev in q["evidence"] for e in ev.split(";") if e.strip()}
        if evidence:
            qs.append({"question": q["question"], "evidence": evidence})
    return qs


def recall(ranked: list[str], evidence: set[str]) -> tuple[float, ...]:
    return tuple(len(evidence & set(ranked[:k])) / len(evidence) for k in KS)


# -- baselines (in-process, same text as ingested: "speaker: content") ----------------------

def tokens(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP]


def bm25_rank(docs: list[str], query: str, k1: float = 1.2, b: float = 0.75) -> list[int]:
    toks = [tokens(d) for d in docs]
    avgdl = sum(map(len, toks)) / len(toks)
    df = Counter(w for t in toks for w in set(t))
    n = len(docs)
    q = tokens(query)
    scores = []
    for t in toks:
        tf = Counter(t)
        s = 0.0
        for w in q:
            if w in tf:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                s += idf * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(t) / avgdl))
        scores.append(s)
    return sorted(range(n), key=lambda i: -scores[i])


def rrf(*rankings: list[int], k: int = 60) -> list[int]:
    score: Counter[int] = Counter()
    for ranking in rankings:
        for r, i in enumerate(ranking):
            score[i] += 1 / (k + r + 1)
    return [i for i, _ in score.most_common()]


def baselines(data: list[dict[str, Any]]) -> dict[str, tuple[float, ...]]:
    embedder = LocalEmbedder()
    sums: dict[str, list[tuple[float, ...]]] = {"BM25": [], "dense": [], "RRF(BM25, dense)": []}
    for sample in data:
        ts = turns(sample)
        docs = [f"{t['speaker']}: {t['content']}" for t in ts]
        ids = [t["dia_id"] for t in ts]
        matrix = np.stack(embedder.embed_sync(docs))
        for q in questions(sample):
            bm = bm25_rank(docs, q["question"])
            dense = list(np.argsort(-(matrix @ embedder.embed_sync([q["question"]])[0])))
            for name, ranking in (("BM25", bm), ("dense", dense),
                                  ("RRF(BM25, dense)", rrf(bm, dense))):
                sums[name].append(recall([ids[i] for i in ranking], q["evidence"]))
    return {name: tuple(float(np.mean([r[j] for r in rs])) for j in range(len(KS)))
            for name, rs in sums.items()}


# -- ours, through the API ----------------------------------------------------------------

def layouts(data: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Workspace -> its conversations: each alone, then all of them in one workspace (each
    conversation's questions then compete with the other conversations' messages)."""
    alone = {f"locomo-{s['sample_id']}": [s] for s in data}
    return {**alone, "locomo-together": data} if len(data) > 1 else alone


async def ingest(address: str, data: list[dict[str, Any]]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        for ws, samples in layouts(data).items():
            by_session: dict[str, list[message_pb2.MessageInput]] = {}
            for sample in samples:
                for t in turns(sample):
                    m = message_pb2.MessageInput(peer_id=peer_id(t["speaker"]),
                                                 content=t["content"])
                    m.metadata.update({"dia_id": f"{sample['sample_id']}/{t['dia_id']}"})
                    m.create_time.FromDatetime(t["when"])
                    by_session.setdefault(f"{sample['sample_id']}-session-{t['session']}",
                                          []).append(m)

            async def chunks(ws: str = ws, by_session: dict[str, Any] = by_session):  # type: ignore[no-untyped-def]
                for name, msgs in by_session.items():
                    yield message_pb2.ImportMessagesRequest(
                        workspace_id=ws, session_id=name, messages=msgs)

            await stub.ImportMessages(chunks(), timeout=300)


def mean_recall(results: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(float(np.mean([r[j] for r in results])) for j in range(len(KS)))


async def evaluate(address: str, data: list[dict[str, Any]]
                   ) -> tuple[dict[str, tuple[float, ...]], float]:
    """Recall per (workspace, conversation) and over all questions alone, and search p95."""
    per: dict[str, tuple[float, ...]] = {}
    alone: list[tuple[float, ...]] = []
    latencies = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        for ws, samples in layouts(data).items():
            together: list[tuple[float, ...]] = []
            for sample in samples:
                results = []
                for q in questions(sample):
                    start = time.perf_counter()
                    reply = await stub.SearchMessages(search_pb2.SearchMessagesRequest(
                        workspace_id=ws, query=q["question"], limit=max(KS)), timeout=10)
                    latencies.append((time.perf_counter() - start) * 1000)
                    ranked = [h.message.metadata["dia_id"] for h in reply.hits]
                    evidence = {f"{sample['sample_id']}/{e}" for e in q["evidence"]}
                    results.append(recall(ranked, evidence))
                per[f"{ws}: {sample['sample_id']}"] = mean_recall(results)
                together += results
            if len(samples) > 1:
                per[f"{ws}: all"] = mean_recall(together)
            else:
                alone += together
    per["each alone: all"] = mean_recall(alone)
    return per, float(np.percentile(latencies, 95))


async def wait_embedded(server: Any) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.dsn())
    try:
        while await conn.fetchval("SELECT count(*) FROM embedding_backlog"):
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def _row(name: str, values: tuple[float, ...]) -> dict[str, str]:
    return {"retriever": name,
            **{f"recall@{k}": f"{v:.3f}" for k, v in zip(KS, values, strict=True)}}


async def main(data: list[dict[str, Any]], skip_baselines: bool) -> None:
    n_questions = sum(len(questions(s)) for s in data)
    with server_process() as server:
        await ingest(server.address, data)
        await wait_embedded(server)
        ours, p95 = await evaluate(server.address, data)
    measured = {} if skip_baselines else baselines(data)
    rows = [_row(f"{name} (this run)", v) for name, v in measured.items()]
    rows += [_row(f"{name} (published)", v) for name, v in PUBLISHED.items()]
    rows += [_row(f"honcho-grpc SearchMessages, {name}", v) for name, v in ours.items()]
    print_table(f"LoCoMo dev subset: {n_questions} questions (categories 1-4), search p95 "
                f"{p95:.1f} ms", rows)
    overall = ours["each alone: all"]
    best10 = max([v[1] for v in measured.values()] + [PUBLISHED["BM25"][1]])
    verdict = "beats" if overall[1] > best10 else "does NOT beat"
    print(f"recall@10: ours {overall[1]:.3f} {verdict} the best baseline {best10:.3f}")
    write_json("locomo_retrieval", {
        "questions": n_questions,
        "ours": {name: dict(zip(map(str, KS), v, strict=True)) for name, v in ours.items()},
        "baselines_this_run": {k: list(v) for k, v in measured.items()},
        "baselines_published": {k: list(v) for k, v in PUBLISHED.items()},
        "search_p95_ms": round(p95, 1)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-baselines", action="store_true")
    asyncio.run(main(json.loads(Path(DATA).read_text()), parser.parse_args().skip_baselines))
