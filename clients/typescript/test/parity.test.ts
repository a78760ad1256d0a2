// Every wrapper method once, against a live server, through an interceptor that records the
// method of each call. The RPCs called are written as JSON to HONCHO_TEST_RPC_LOG, where
// tests/clients/test_typescript_client.py compares them with every RPC of the protos.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { test } from "node:test";

import type { Interceptor } from "@connectrpc/connect";

import { FailedPreconditionError, Honcho, proto } from "../src/index.js";

const address = process.env.HONCHO_TEST_ADDRESS;
const log = process.env.HONCHO_TEST_RPC_LOG;
const skip = address ? false : "HONCHO_TEST_ADDRESS is not set (tests/clients/test_typescript_client.py sets it)";
const WEBHOOK_URL = "https://93.184.215.14/hook"; // a public address literal: accepted, never resolved

test("the wrapper calls every RPC", { skip }, async () => {
  const called = new Set<string>();
  const record: Interceptor = (next) => async (req) => {
    called.add(new URL(req.url).pathname);
    return next(req);
  };
  const honcho = new Honcho({ address, workspaceId: `parity-${randomUUID().slice(0, 12)}`, interceptors: [record] });
  try {
    assert.deepEqual(await honcho.getMetadata(), {}); // GetOrCreateWorkspace
    await honcho.setMetadata({ app: "parity" }); // UpdateWorkspace
    assert.deepEqual((await honcho.refresh()).metadata, { app: "parity" }); // GetWorkspace
    const workspaces: string[] = [];
    for await (const w of honcho.workspaces()) workspaces.push(w); // ListWorkspaces
    assert.ok(workspaces.includes(honcho.workspaceId));

    const alice = await honcho.peer("alice", { metadata: { role: "user" } }); // GetOrCreatePeer
    const bob = await honcho.peer("bob");
    const carol = await honcho.peer("carol", { create: true });
    await alice.setMetadata({ role: "admin" }); // UpdatePeer
    assert.deepEqual((await alice.refresh()).metadata, { role: "admin" }); // GetPeer
    await alice.setConfiguration({ observeMe: true });
    assert.equal((await alice.getConfiguration()).observeMe, true);

    const session = await honcho.session("s1", { create: true }); // GetOrCreateSession
    await session.setMetadata({ topic: "parity" }); // UpdateSession
    assert.deepEqual((await session.refresh()).metadata, { topic: "parity" }); // GetSession
    await session.addPeers([alice, bob]); // AddPeers
    await session.setPeers([alice, bob, carol]); // SetPeers
    await session.removePeers([carol]); // RemovePeers
    assert.deepEqual((await session.peers()).map((p) => p.id).sort(), ["alice", "bob"]); // ListSessionPeers
    await session.setPeerConfiguration(bob, { observeOthers: true }); // SetSessionPeerConfig
    assert.equal((await session.getPeerConfiguration(bob)).observeOthers, true); // GetSessionPeerConfig

    const written = await session.addMessages([
      alice.message("I adopted a puppy named Biscuit"),
      bob.message("Biscuit is a lovely name"),
    ]); // CreateMessages
    assert.equal(await session.importMessages([alice.message("imported")]), 1); // ImportMessages
    const uploaded = await session.uploadFile(
      { filename: "notes.txt", content: new TextEncoder().encode("alice likes tea"), content_type: "text/plain" },
      alice,
    ); // UploadFile
    assert.equal(uploaded[0]!.content, "alice likes tea");
    assert.equal((await session.getMessage(written[0]!.id)).content, written[0]!.content); // GetMessage
    assert.deepEqual((await session.updateMessage(written[0]!, { edited: true })).metadata, { edited: true }); // UpdateMessage
    await session.deleteMessage(uploaded[0]!.id); // DeleteMessage
    let count = 0;
    for await (const _ of session.messages()) count++; // ListMessages
    assert.equal(count, 3);
    const peers: string[] = [];
    for await (const p of honcho.peers()) peers.push(p.id); // ListPeers
    assert.deepEqual(peers.sort(), ["alice", "bob", "carol"]);
    const aliceSessions: string[] = [];
    for await (const s of alice.sessions()) aliceSessions.push(s.id); // ListPeerSessions
    assert.deepEqual(aliceSessions, ["s1"]);
    const sessions: string[] = [];
    for await (const s of honcho.sessions()) sessions.push(s.id); // ListSessions
    assert.deepEqual(sessions, ["s1"]);
    assert.ok((await honcho.search("puppy", { limit: 5 })).length > 0); // SearchMessages
    assert.ok((await session.context({ tokens: 500 })).messages.length > 0); // GetContext
    assert.equal((await session.summaries()).short, undefined); // GetSummaries
    const clone = await session.clone(); // CloneSession
    assert.notEqual(clone.id, session.id);
    await clone.delete(); // DeleteSession
    await carol.delete(); // DeletePeer

    await alice.setCard(["IDENTITY: alice"]); // SetPeerCard
    assert.deepEqual(await alice.getCard(), ["IDENTITY: alice"]); // GetPeerCard
    const aboutBob = alice.conclusionsOf(bob);
    const [fact] = await aboutBob.create([{ content: "bob likes dogs", session_id: "s1" }]); // CreateConclusions
    const listed: string[] = [];
    for await (const c of aboutBob.list()) listed.push(c.id); // ListConclusions
    assert.deepEqual(listed, [fact!.id]);
    assert.deepEqual(
      (await aboutBob.query("dogs")).map((c) => c.id),
      [fact!.id],
    ); // QueryConclusions
    assert.match(await alice.representation({ session, target: bob }), /dogs/); // GetRepresentation
    assert.match(await session.representation(alice, { target: bob }), /dogs/);
    assert.match((await alice.context({ target: bob })).representation, /dogs/); // GetPeerContext
    await aboutBob.delete(fact!.id); // DeleteConclusion

    assert.match(await alice.chat("What is the puppy called?"), /Biscuit/); // Chat
    assert.match(await alice.chatStream("What is the puppy called?").read(), /Biscuit/); // StreamChat
    assert.equal(typeof (await honcho.scheduleDream({ observer: alice, session, observed: bob })), "boolean"); // ScheduleDream
    assert.equal((await honcho.queueStatus({ observer: alice })).totals.failed, 0); // GetQueueStatus

    const endpoint = await honcho.createWebhook(WEBHOOK_URL); // CreateWebhookEndpoint
    const endpoints: string[] = [];
    for await (const w of honcho.webhooks()) endpoints.push(w.id); // ListWebhookEndpoints
    assert.deepEqual(endpoints, [endpoint.id]);
    await honcho.testWebhook(); // TestWebhook
    await honcho.deleteWebhook(endpoint); // DeleteWebhookEndpoint

    const team = await honcho.scope("team", { metadata: { k: "v" } }); // GetOrCreateScope
    assert.deepEqual((await honcho.getScope("team")).metadata, { k: "v" }); // GetScope
    const scopes: string[] = [];
    for await (const s of honcho.scopes()) scopes.push(s.id); // ListScopes
    assert.deepEqual(scopes, ["team"]);
    assert.equal(await team.addSessions([session]), 1); // AddScopeSessions
    const members: string[] = [];
    for await (const s of team.sessions()) members.push(s.id); // ListScopeSessions
    assert.deepEqual(members, [session.id]);
    assert.deepEqual(Object.keys(await team.status()), [session.id]); // GetScopeStatus
    assert.match(await alice.chat("What is the puppy called?", { scope: team }), /Biscuit/);
    assert.equal(typeof (await alice.representation({ scope: team })), "string");
    assert.equal((await session.context({ peerTarget: alice, scope: team })).peerCard.length, 0);
    assert.ok((await honcho.search("puppy", { scope: team })).length > 0);
    assert.equal(await team.removeSession(session), true); // RemoveScopeSession

    let ready!: () => void;
    const listening = new Promise<void>((resolve) => (ready = resolve));
    const feed = honcho.events({ session, onReady: ready }); // WatchEvents
    const first = feed.next();
    await listening;
    await feed.return(undefined);
    await first.catch(() => undefined);

    // Keys exist only with auth on: the call is made and refused with the reason.
    await assert.rejects(honcho.createKey({ peer: alice }), (err: unknown) => {
      assert.ok(err instanceof FailedPreconditionError);
      assert.equal(err.reason, "AUTH_DISABLED");
      return true;
    }); // CreateKey

    // The raw generated clients share the wrapper's transport.
    const raw = await honcho.rpc.peers.getPeer({ workspaceId: honcho.workspaceId, peerId: "alice" });
    assert.equal(raw.peer?.id, "alice");
    assert.equal(proto.PeerService.typeName, "honcho.v1.PeerService");

    await honcho.deleteWorkspace(); // DeleteWorkspace
  } finally {
    honcho.close();
    if (log) writeFileSync(log, JSON.stringify([...called].sort()));
  }
});
