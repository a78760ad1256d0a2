"""Model calls and tokens per 100 messages: a server and a worker process with the OpenAI
provider pointed at a scripted wire fake (tests/fakes) that answers every task validly, for a
live chat (messages one at a time, paced) and a bulk import. Time is compressed: the live
batching bound and idle wait, the card refresh interval and the pace between messages are
all scaled by --scale (default 0.1: a 60 s bound, a 20 s idle wait, a card every 300 s and a
message every 3 s become 6 s, 2 s, 30 s and 0.3 s).

    .venv/bin/python -m bench.reasoning_calls [--messages 100] [--scale 0.1] [--dream]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
from google.protobuf import timestamp_pb2
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc

from bench.common import ROOT, print_table, server_process, write_json
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Reply

LINES = [
    ("alice", "I moved to Lisbon last spring and I love the light in the evenings."),
    ("bob", "That sounds lovely. Do you still work at the design studio?"),
    ("alice", "Yes, but I switched to part time so I can study pottery on Fridays."),
    ("bob", "You should try the ceramics fair in Porto next month, I went last year."),
    ("alice", "Good idea. My sister Ines lives in Porto so I could stay with her."),
    ("bob", "Perfect. I recommend the tile museum too, it is near the station."),
]


OUTPUT_TOKENS: list[int] = []  # per answer, in the order the requests came


def kind_of(body: dict[str, Any]) -> str:
    system = str(body["messages"][0]["content"])
    for word, kind in (("consolidate", "dream"), ("peer card", "card"),
                       ("summary", "summary"), ("record what a conversation", "extraction")):
        if word in system:
            return kind
    return "other"


def respond(body: dict[str, Any]) -> Reply:
    """A valid answer to each task: one fact per new transcript line (about its speaker),
    whatever the batching, so dreams come due after the same number of messages."""
    kind = kind_of(body)
    value: dict[str, Any] | str
    if kind == "extraction":
        text = str(body["messages"][1]["content"]).rpartition("New messages:")[2]
        lines = [line for line in text.splitlines() if line.strip()]
        value = {"explicit": [{"about": line[20:].partition(":")[0],
                               "content": f"fact {uuid.uuid4().hex[:8]} from {line[20:60]}",
                               "said_at": line[:19]} for line in lines]}
    elif kind == "card":
        value = {"card": ["ATTRIBUTE: Lives in Lisbon"]}
    elif kind == "dream":
        value = {"deductive": [], "inductive": [], "contradictions": [], "superseded": []}
    else:
        value = "The conversation so far, summarised."
    text = value if isinstance(value, str) else json.dumps(value)
    OUTPUT_TOKENS.append(len(text) // 4)
    return Reply(text=text, input_tokens=len(json.dumps(body)) // 4,
                 output_tokens=len(text) // 4)


def messages(n: int, start: float) -> Iterator[message_pb2.MessageInput]:
    for i in range(n):
        peer, text = LINES[i % len(LINES)]
        when = timestamp_pb2.Timestamp()
        when.FromSeconds(int(start) + i * 3)
        yield message_pb2.MessageInput(peer_id=peer, content=f"{text} ({i})", create_time=when)


def settle(dsn: str, ws: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FILTER (WHERE status IN ('pending', "
                               "'in_progress')), count(*) FROM queue WHERE workspace_id = %s",
                               (ws,)).fetchone()
            if row and row[1] and not row[0]:
                return
            time.sleep(0.5)
    raise RuntimeError("the queue did not drain")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    fake = FakeOpenAI()
    fake.respond = respond
    rows = []
    with fake.in_thread():
        env = {"LLM_PROVIDER": "openai", "LLM_MODEL": "bench-model",
               "LLM_OPENAI_BASE_URL": fake.url, "LLM_OPENAI_API_KEY": "bench",
               # The defaults (60 s bound, 20 s idle, a card at most every 300 s), scaled.
               "QUEUE_BATCH_WAIT_SECONDS": str(60.0 * args.scale),
               "QUEUE_BATCH_IDLE_SECONDS": str(20.0 * args.scale),
               "PEER_CARD_REFRESH_SECONDS": str(300.0 * args.scale),
               "EMBEDDING_PROVIDER": "fake",
               "DREAM_ENABLED": "true" if args.dream else "false",
               "DREAM_CONCLUSION_THRESHOLD": "50", "DREAM_MIN_INTERVAL_SECONDS": "0"}
        with server_process(**env) as server:
            worker = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "worker"],
                                      env={**os.environ, **env, "APP_LOG_LEVEL": "WARNING",
                                           "DB_CONNECTION_URI": server.dsn()}, cwd=ROOT)
            try:
                with grpc.insecure_channel(server.address) as channel:
                    stub = message_pb2_grpc.MessageServiceStub(channel)
                    for scenario in ("live chat", "bulk import"):
                        ws = f"bench-{uuid.uuid4().hex[:8]}"
                        before = len(fake.requests)
                        items = list(messages(args.messages, time.time() - 86400))
                        if scenario == "live chat":
                            for item in items:
                                stub.CreateMessages(message_pb2.CreateMessagesRequest(
                                    workspace_id=ws, session_id="s", messages=[item]))
                                time.sleep(3.0 * args.scale)
                        else:
                            stub.ImportMessages(iter([message_pb2.ImportMessagesRequest(
                                workspace_id=ws, session_id="s", messages=items)]))
                        settle(server.dsn(), ws)
                        rows.append(_row(scenario, fake.requests[before:],
                                         OUTPUT_TOKENS[before:], args.messages))
            finally:
                worker.terminate()
                worker.wait(30)
    return rows


def _row(scenario: str, requests: list[Any], outputs: list[int], n: int) -> dict[str, Any]:
    kinds = Counter(kind_of(r.body) for r in requests)
    per = 100 / n
    return {"scenario": scenario, "calls/100": round(len(requests) * per, 1),
            **{k: round(kinds.get(k, 0) * per, 1)
               for k in ("extraction", "card", "summary", "dream")},
            "input tok/100": round(sum(len(json.dumps(r.body)) // 4 for r in requests) * per),
            "output tok/100": round(sum(outputs) * per)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--dream", action="store_true")
    args = parser.parse_args()
    rows = run(args)
    print_table(f"model calls per 100 messages (dream {'on' if args.dream else 'off'})", rows)
    write_json("reasoning_calls" + ("_dream" if args.dream else ""),
               {"messages": args.messages, "scale": args.scale, "rows": rows})


if __name__ == "__main__":
    main()
