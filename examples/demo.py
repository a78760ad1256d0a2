"""A demo conversation against a running honcho-grpc (`make run` in another terminal):
store it, watch the worker derive conclusions, a summary and a peer card, then stream an
answer about the user. No keys needed: the offline `local` provider does the reasoning.

    .venv/bin/python examples/demo.py [--address HOST:PORT]

The address defaults to HONCHO_ADDRESS, else localhost:50051, as in the client library.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from honcho_grpc_client import Honcho, UnavailableError

CONVERSATION = [
    ("maya", "Hi! I'm Maya, I just moved to Lisbon for a job at a robotics startup."),
    ("coach", "Welcome to Lisbon! How are you settling in?"),
    ("maya", "Pretty well. I am learning Portuguese every morning before work."),
    ("coach", "That's a great habit. What else fills your week?"),
    ("maya", "I play the cello in a community orchestra on Thursdays."),
    ("coach", "Lovely. Do you have goals for this year?"),
    ("maya", "I want to run a half marathon in October."),
    ("coach", "How is the training going?"),
    ("maya", "I run three times a week, but my left knee hurts after long runs."),
    ("coach", "Have you seen a physiotherapist about the knee?"),
    ("maya", "Not yet. I prefer to avoid doctors, honestly."),
    ("coach", "Understood. What do you eat before long runs?"),
    ("maya", "I am vegetarian, so usually oatmeal with bananas."),
    ("coach", "Good fuel. How do you relax?"),
    ("maya", "I read science fiction; my favourite author is Ursula K. Le Guin."),
    ("coach", "Any trips planned?"),
    ("maya", "My sister lives in Porto, I visit her once a month by train."),
    ("coach", "Sounds like a full life."),
    ("maya", "It is! Work is intense though, I often stay late on Wednesdays."),
    ("coach", "Let's plan recovery days around those Wednesdays."),
    ("maya", "Good idea. I also drink too much coffee on those days."),
    ("coach", "We can work on that too."),
]


def wait_for_worker(session, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        totals = session.queue_status().totals
        if totals.completed and not totals.pending and not totals.in_progress:
            return
        time.sleep(0.25)
    raise SystemExit("the worker did not finish within a minute: is `make run` running?")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default=None,
                        help="host:port (default: HONCHO_ADDRESS, else localhost:50051)")
    args = parser.parse_args()
    # address=None: the client library's own default (HONCHO_ADDRESS, else localhost:50051).
    honcho = Honcho(address=args.address, workspace_id=f"demo-{uuid.uuid4().hex[:6]}")
    try:
        run(honcho)
    except UnavailableError:
        where = args.address or os.environ.get("HONCHO_ADDRESS") or "localhost:50051"
        raise SystemExit(f"no honcho-grpc server answers on {where}: start one with "
                         "`make run`, or point HONCHO_ADDRESS / --address at it") from None
    finally:
        honcho.close()


def run(honcho: Honcho) -> None:
    maya, coach = honcho.peer("maya"), honcho.peer("coach")
    session = honcho.session("onboarding")
    started = time.monotonic()
    session.add_messages([(maya if who == "maya" else coach).message(text)
                          for who, text in CONVERSATION])
    wait_for_worker(session)
    print(f"worker done {time.monotonic() - started:.1f} s after the messages were stored\n")

    print("== conclusions about maya (maya's own view)")
    for c in list(maya.conclusions())[:8]:
        print(f"- [{c.level}] {c.content}")
    summaries = session.summaries()
    if summaries.short is not None:
        print("\n== short summary\n" + summaries.short.content)
    print("\n== maya's peer card")
    for entry in maya.card():
        print(f"- {entry}")
    print("\n== streamed answer to maya: how is my half marathon training going?")
    for delta in maya.chat("How is my half marathon training going?", stream=True):
        print(delta, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
