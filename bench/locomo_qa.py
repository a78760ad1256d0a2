"""End-to-end memory on LoCoMo: ingest the dev conversations, let the worker derive with the
configured provider, ask every question through Chat (the dialectic) and score the answers.

The system runs as users run it (`honcho-grpc up`), configured from the environment and
config.toml as any deployment: the `local` provider by default, a real one when LLM_* is set
(e.g. LLM_PROVIDER=openai LLM_MODEL=gpt-4o-mini OPENAI_API_KEY=...).

Each conversation is a workspace, each LoCoMo session a session (imported in order, the
session date as each turn's create_time), each speaker a peer. After GetQueueStatus shows the
workspace's embedding backlog and derivation queue empty, every question of categories 1-4
(category 5 is adversarial and has no answer) is asked through Chat as the peer the question
names (the speaker whose name it contains; the first speaker otherwise), about itself.

Scores: exact match and token F1 (SQuAD normalisation) and whether the normalised gold
answer occurs in the answer, always; an LLM judge (the configured provider, through the
project's providers/llm, Mem0-style generous grading) when the provider is not `local`.

    .venv/bin/python -m bench.locomo_qa [--conversations 2] [--limit-questions N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import string
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import grpc
from honcho_grpc_proto.v1 import dialectic_pb2, dialectic_pb2_grpc, message_pb2, message_pb2_grpc

from bench.common import percentiles, print_table, server_process, write_json
from bench.faces import wait_done
from bench.locomo_retrieval import DATA, peer_id, turns
from honcho_grpc.providers.llm import LLMProvider, build_llm
from honcho_grpc.settings import Settings

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
JUDGE_SCHEMA = {"type": "object", "properties": {
    "reasoning": {"type": "string"},
    "verdict": {"type": "string", "enum": ["CORRECT", "WRONG"]}},
    "required": ["reasoning", "verdict"], "additionalProperties": False}
JUDGE_PROMPT = """Your task is to label an answer to a question as CORRECT or WRONG.
You are given a question, a gold (ground truth) answer and a generated answer. The question
is about memories of a conversation. Be generous: the generated answer is CORRECT when it
touches on the same topic or fact as the gold answer, even if longer or worded differently.
For time questions, it is CORRECT when it refers to the same date or period as the gold
answer, even in another format (e.g. "May 7th" vs "7 May"), or relative ("last Tuesday")
when that resolves to the same date.

Question: {question}
Gold answer: {gold}
Generated answer: {answer}

Give one short sentence of reasoning, then the verdict."""


# -- data ----------------------------------------------------------------------------------

def qa_items(sample: dict[str, Any], limit: int | None) -> list[dict[str, Any]]:
    conv = sample["conversation"]
    speakers = [conv["speaker_a"], conv["speaker_b"]]
    items = []
    for q in sample["qa"]:
        if q["category"] not in CATEGORIES or "answer" not in q:
            continue
        named = [s for s in speakers if re.search(rf"\b{re.escape(s)}\b", q["question"])]
        items.append({"question": q["question"], "gold": str(q["answer"]),
                      "category": CATEGORIES[q["category"]],
                      "peer": peer_id(named[0] if named else speakers[0])})
    return items[:limit] if limit is not None else items


async def ingest(address: str, sample: dict[str, Any], max_sessions: int | None) -> str:
    """One workspace per conversation, the sessions imported in their order."""
    ws = f"locomo-qa-{sample['sample_id']}"
    by_session: dict[int, list[message_pb2.MessageInput]] = defaultdict(list)
    for t in turns(sample):
        if max_sessions is not None and t["session"] > max_sessions:
            continue
        m = message_pb2.MessageInput(peer_id=peer_id(t["speaker"]), content=t["content"])
        m.create_time.FromDatetime(t["when"])
        by_session[t["session"]].append(m)

    async def chunks():  # type: ignore[no-untyped-def]
        for n, msgs in sorted(by_session.items()):
            yield message_pb2.ImportMessagesRequest(workspace_id=ws, session_id=f"session-{n}",
                                                    messages=msgs)

    async with grpc.aio.insecure_channel(address) as channel:
        await message_pb2_grpc.MessageServiceStub(channel).ImportMessages(chunks(), timeout=600)
    return ws


# -- scoring -------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the|and)\b", " ", text).split())


def token_f1(answer: str, gold: str) -> float:
    got, want = normalise(answer).split(), normalise(gold).split()
    common = sum((Counter(got) & Counter(want)).values())
    if not got or not want or not common:
        return float(got == want)
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


async def judge(llm: LLMProvider, item: dict[str, Any]) -> bool:
    verdict = await llm.structured(
        [{"role": "user", "content": JUDGE_PROMPT.format(**item)}], JUDGE_SCHEMA,
        max_tokens=300)
    return str(verdict.get("verdict", "")).upper() == "CORRECT"


def score(item: dict[str, Any]) -> None:
    item["exact"] = float(normalise(item["answer"]) == normalise(item["gold"]))
    item["f1"] = token_f1(item["answer"], item["gold"])
    gold = normalise(item["gold"])
    item["contains"] = float(bool(gold) and gold in normalise(item["answer"]))


def summarise(items: list[dict[str, Any]], judged: bool) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[item["category"]].append(item)
    groups["overall"] = items
    rows = []
    for name in [*CATEGORIES.values(), "overall"]:
        group = groups.get(name)
        if not group:
            continue
        row: dict[str, Any] = {"category": name, "questions": len(group)}
        for metric in ("exact", "f1", "contains") + (("judge",) if judged else ()):
            row[metric] = round(sum(float(i[metric]) for i in group) / len(group), 3)
        rows.append(row)
    return rows


# -- the run -------------------------------------------------------------------------------

async def ask(address: str, ws: str, items: list[dict[str, Any]], level: int,
              concurrency: int) -> None:
    """Every question through Chat, `concurrency` at a time; answer and latency kept."""
    gate = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dialectic_pb2_grpc.DialecticServiceStub(channel)

        async def one(item: dict[str, Any]) -> None:
            async with gate:
                start = time.perf_counter()
                reply = await stub.Chat(dialectic_pb2.ChatRequest(query=dialectic_pb2.ChatQuery(
                    workspace_id=ws, peer_id=item["peer"], query=item["question"],
                    reasoning_level=level)), timeout=600)  # type: ignore[arg-type]
                item["ms"] = (time.perf_counter() - start) * 1000
                item["answer"] = reply.content

        await asyncio.gather(*(one(item) for item in items))


async def main(args: argparse.Namespace, data: list[dict[str, Any]]) -> dict[str, Any]:
    settings = Settings()
    judged = settings.llm.provider != "local"
    items: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    with server_process("up") as server:
        for sample in data:
            start = time.perf_counter()
            ws = await ingest(server.address, sample, args.sessions)
            done = await wait_done(server.address, ws, start, args.wait, poll_s=1)
            timings[sample["sample_id"]] = round(done.processed_s or -1, 1)
            if done.processed_s is None:
                print(f"{ws}: queue not drained within {args.wait:.0f} s "
                      f"({done.embedding_pending} to embed, {done.open_jobs} jobs); asking now")
            asked = qa_items(sample, args.limit_questions)
            await ask(server.address, ws, asked, args.reasoning_level, args.concurrency)
            for item in asked:
                item["conversation"] = sample["sample_id"]
            items += asked
    for item in items:
        score(item)
    if judged:
        llm = build_llm(settings.llm)
        try:
            verdicts = await asyncio.gather(*(judge(llm, i) for i in items))
        finally:
            await llm.aclose()
        for item, ok in zip(items, verdicts, strict=True):
            item["judge"] = float(ok)
    rows = summarise(items, judged)
    latency = percentiles([i["ms"] for i in items]) if len(items) > 1 else {}
    provider = settings.llm.provider + (f" ({settings.llm.model})" if settings.llm.model else "")
    print_table(f"LoCoMo QA through Chat, provider {provider}, reasoning level "
                f"{args.reasoning_level}; drained in {timings} s; Chat p50/p95 "
                f"{latency.get('p50_ms')} / {latency.get('p95_ms')} ms", rows)
    result = {"provider": provider, "judged": judged, "rows": rows, "drained_s": timings,
              "chat_latency": latency, "reasoning_level": args.reasoning_level,
              "answers": items}
    write_json(args.name, result)
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--conversations", type=int, default=None, help="the first N only")
    p.add_argument("--limit-questions", type=int, default=None,
                   help="at most N questions per conversation (a quick run)")
    p.add_argument("--sessions", type=int, default=None,
                   help="ingest only each conversation's first N sessions (a smoke run)")
    p.add_argument("--reasoning-level", type=int, default=dialectic_pb2.REASONING_LEVEL_LOW,
                   choices=range(1, 6), help="1 minimal ... 5 max (default 2, low)")
    p.add_argument("--concurrency", type=int, default=4, help="questions in flight")
    p.add_argument("--wait", type=float, default=1800.0,
                   help="seconds a conversation may take to be derived")
    p.add_argument("--name", default="locomo_qa", help="results file name")
    return p


if __name__ == "__main__":
    args = parser().parse_args()
    asyncio.run(main(args, json.loads(Path(args.data).read_text())[:args.conversations]))
