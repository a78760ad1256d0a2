// Retries, deadlines, auth metadata and error details against a scripted in-process gRPC
// server (Connect's Node adapter speaking the gRPC protocol over HTTP/2). No live server needed.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";

import { ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { DialecticService, FinishReason } from "../src/gen/honcho/v1/dialectic_pb.js";
import { PeerService } from "../src/gen/honcho/v1/peer_pb.js";
import {
  Code,
  DeadlineExceededError,
  Honcho,
  InvalidArgumentError,
  UnauthenticatedError,
  UnavailableError,
} from "../src/index.js";

type Step = "ok" | "slow" | ConnectError;

const state = { script: [] as Step[], calls: 0, auth: [] as (string | null)[], streamEnded: false };

const unavailable = () =>
  new ConnectError("database unavailable", Code.Unavailable, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "DATABASE_UNAVAILABLE", domain: "honcho.dev" } },
    { desc: RetryInfoSchema, value: { retryDelay: { seconds: 1n, nanos: 0 } } },
  ]);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function routes(router: ConnectRouter) {
  router.service(DialecticService, {
    async chat() {
      return { content: "unused" };
    },
    async *streamChat(req, ctx) {
      state.calls++;
      state.streamEnded = false;
      const step = state.script.shift() ?? "ok";
      if (step instanceof ConnectError) throw step;
      try {
        for (const word of ["alice ", "is ", "a ", "nurse"]) {
          if (step === "slow") await sleep(300);
          if (ctx.signal.aborted) return;
          yield { event: { case: "delta", value: { content: word } } };
        }
        yield { event: { case: "completion", value: { finishReason: FinishReason.STOP, usage: { inputTokens: 3, outputTokens: 4 }, conclusionIds: ["c1"] } } };
      } finally {
        state.streamEnded = true;
      }
    },
  });
  router.service(PeerService, {
    async getPeer(req, ctx) {
      state.calls++;
      state.auth.push(ctx.requestHeader.get("authorization"));
      const step = state.script.shift() ?? "ok";
      if (step === "slow") await new Promise((r) => setTimeout(r, 1500));
      else if (step !== "ok") throw step;
      return { peer: { id: req.peerId, workspaceId: req.workspaceId } };
    },
  });
}

describe("transport", () => {
  let server: http2.Http2Server;
  let address: string;

  before(async () => {
    server = http2.createServer(connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const reset = (...script: Step[]) => {
    state.script = script;
    state.calls = 0;
    state.auth = [];
  };
  const fast = { maxAttempts: 4, initialBackoffMs: 5, maxBackoffMs: 20 };

  test("UNAVAILABLE is retried with backoff, then succeeds", async () => {
    reset(unavailable(), unavailable());
    const honcho = new Honcho({ address, workspaceId: "w", retry: fast });
    const peer = await (await honcho.peer("p")).refresh();
    assert.equal(peer.id, "p");
    assert.equal(state.calls, 3);
    honcho.close();
  });

  test("retries stop after maxAttempts with the typed error and its details", async () => {
    reset(...Array.from({ length: 10 }, unavailable));
    const honcho = new Honcho({ address, workspaceId: "w", retry: fast });
    await assert.rejects((await honcho.peer("p")).refresh(), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.reason, "DATABASE_UNAVAILABLE");
      assert.equal(err.retryDelayMs, 1000);
      return true;
    });
    assert.equal(state.calls, 4);
    reset(unavailable());
    const noRetry = new Honcho({ address, workspaceId: "w", retry: false });
    await assert.rejects((await noRetry.peer("p")).refresh(), UnavailableError);
    assert.equal(state.calls, 1);
    honcho.close();
    noRetry.close();
  });

  test("other codes are not retried; BadRequest violations are parsed", async () => {
    reset(
      new ConnectError("peer_id: bad", Code.InvalidArgument, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "INVALID_ID", domain: "honcho.dev", metadata: { field: "peer_id" } } },
        { desc: BadRequestSchema, value: { fieldViolations: [{ field: "peer_id", description: "must match [A-Za-z0-9_-]+" }] } },
      ]),
    );
    const honcho = new Honcho({ address, workspaceId: "w", retry: fast });
    await assert.rejects((await honcho.peer("p")).refresh(), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.equal(err.reason, "INVALID_ID");
      assert.deepEqual(err.metadata, { field: "peer_id" });
      assert.deepEqual(err.fieldViolations, [{ field: "peer_id", description: "must match [A-Za-z0-9_-]+" }]);
      return true;
    });
    assert.equal(state.calls, 1);
    honcho.close();
  });

  test("the token goes out as a bearer header; auth errors are typed", async () => {
    reset("ok", new ConnectError("token expired", Code.Unauthenticated));
    const honcho = new Honcho({ address, workspaceId: "w", token: "secret-jwt" });
    await (await honcho.peer("p")).refresh();
    await assert.rejects((await honcho.peer("p")).refresh(), UnauthenticatedError);
    assert.deepEqual(state.auth, ["Bearer secret-jwt", "Bearer secret-jwt"]);
    honcho.close();
    reset("ok");
    const anonymous = new Honcho({ address, workspaceId: "w", token: "" });
    await (await anonymous.peer("p")).refresh();
    assert.deepEqual(state.auth, [null]);
    anonymous.close();
  });

  test("the default deadline applies", async () => {
    reset("slow");
    const honcho = new Honcho({ address, workspaceId: "w", timeoutMs: 200 });
    await assert.rejects((await honcho.peer("p")).refresh(), DeadlineExceededError);
    honcho.close();
  });

  test("a streamed chat is retried on UNAVAILABLE before its first delta", async () => {
    reset(unavailable());
    const honcho = new Honcho({ address, workspaceId: "w", retry: fast });
    const peer = await honcho.peer("alice");
    const stream = peer.chat("job?", { stream: true });
    const deltas: string[] = [];
    for await (const d of stream) deltas.push(d);
    assert.deepEqual(deltas, ["alice ", "is ", "a ", "nurse"]);
    assert.deepEqual(stream.completion, { finishReason: "stop", inputTokens: 3, outputTokens: 4, conclusionIds: ["c1"] });
    assert.equal(state.calls, 2);
    honcho.close();
  });

  test("a streamed chat has a deadline, and leaving early cancels it", async () => {
    reset("slow");
    const honcho = new Honcho({ address, workspaceId: "w", streamTimeoutMs: 450 });
    const peer = await honcho.peer("alice");
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const d of peer.chat("job?", { stream: true })) seen.push(d);
      })(),
      DeadlineExceededError,
    );
    assert.ok(seen.length >= 1 && seen.length < 4, `some deltas before the deadline: ${seen.length}`);

    reset("slow");
    for await (const _ of peer.chat("job?", { stream: true, timeoutMs: 60_000 })) break;
    await sleep(400);
    assert.ok(state.streamEnded, "the server saw the cancellation");
    honcho.close();
  });

  test("an unreachable server is UNAVAILABLE", async () => {
    const honcho = new Honcho({ address: "127.0.0.1:1", workspaceId: "w", retry: { maxAttempts: 2, initialBackoffMs: 1 } });
    await assert.rejects((await honcho.peer("p")).refresh(), UnavailableError);
    honcho.close();
  });
});
