// Against a live honcho-grpc server that requires client certificates (mTLS), set up by
// tests/clients/test_tls_clients.py: HONCHO_TEST_TLS_ADDRESS and the PEM files of a CA, a client
// certificate and its key, all made for the test. Skipped without them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { CanceledError, Honcho, UnavailableError } from "../src/index.js";

const env = process.env;
const address = env.HONCHO_TEST_TLS_ADDRESS;
const skip = address ? false : "HONCHO_TEST_TLS_ADDRESS is not set (tests/clients/test_tls_clients.py sets it)";

describe("mTLS", { skip }, () => {
  const pem = (name: string) => readFileSync(env[name]!, "utf8");

  test("a client with the CA and its certificate is served", async () => {
    const honcho = new Honcho({
      address,
      workspaceId: env.HONCHO_TEST_WORKSPACE,
      tls: { ca: pem("HONCHO_TEST_TLS_CA"), cert: pem("HONCHO_TEST_TLS_CERT"), key: pem("HONCHO_TEST_TLS_KEY") },
    });
    try {
      const peer = await honcho.peer("tls-alice", { metadata: { over: "mtls" } });
      assert.deepEqual(peer.metadata, { over: "mtls" });
    } finally {
      honcho.close();
    }
  });

  test("a client without a certificate is refused", async () => {
    const honcho = new Honcho({ address, workspaceId: env.HONCHO_TEST_WORKSPACE, tls: { ca: pem("HONCHO_TEST_TLS_CA") }, retry: false, timeoutMs: 5_000 });
    try {
      // Under TLS 1.3 the server refuses the missing certificate after the client has finished
      // its side of the handshake: node then sees the connection reset (CANCEL) or closed.
      await assert.rejects(honcho.peer("tls-bob", { create: true }), (e: unknown) => e instanceof UnavailableError || e instanceof CanceledError);
    } finally {
      honcho.close();
    }
  });

  test("a half client certificate is refused before any call", () => {
    assert.throws(() => new Honcho({ address, tls: { cert: pem("HONCHO_TEST_TLS_CERT") } }), /go together/);
  });
});
