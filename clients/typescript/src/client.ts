// A thin idiomatic wrapper over the generated Connect-ES clients (gRPC protocol, HTTP/2):
//
//   const honcho = new Honcho({ address: "localhost:50051", workspaceId: "my-app" });
//   const alice = await honcho.peer("alice");
//   const session = await honcho.session("s1");
//   await session.addMessages([alice.message("I love hiking in the Alps")]);
//   for await (const m of session.messages()) console.log(m.sequence, m.content);
//   console.log(await alice.chat("What does alice enjoy?"));
//   for await (const delta of alice.chat("Tell me more", { stream: true })) process.stdout.write(delta);
import { randomUUID } from "node:crypto";
import type * as http2 from "node:http2";

import { toJson, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { toHonchoError } from "./errors.js";
import { ConclusionService, type ConclusionInputSchema } from "./gen/honcho/v1/conclusion_pb.js";
import {
  DialecticService,
  ReasoningLevel,
  FinishReason,
  type ChatQuerySchema,
  type StreamChatResponse,
} from "./gen/honcho/v1/dialectic_pb.js";
import { EventService, EventType } from "./gen/honcho/v1/event_pb.js";
import { KeyService } from "./gen/honcho/v1/key_pb.js";
import { MessageService, type MessageInputSchema, type UploadFileRequestSchema } from "./gen/honcho/v1/message_pb.js";
import { PeerService } from "./gen/honcho/v1/peer_pb.js";
import {
  ConfigurationSchema,
  ConclusionLevel,
  MessageConfigurationSchema,
  PeerConfigurationSchema,
  SessionPeerConfigurationSchema,
  SummaryType,
  type Conclusion as ConclusionPb,
  type Message as MessagePb,
  type Peer as PeerPb,
  type QueueCounts as QueueCountsPb,
  type Session as SessionPb,
  type SessionPeer,
  type Summary as SummaryPb,
  type WebhookEndpoint as WebhookEndpointPb,
} from "./gen/honcho/v1/resources_pb.js";
import { ScopeService, type Scope as ScopePb } from "./gen/honcho/v1/scope_pb.js";
import { SearchService, type SearchMessagesRequestSchema } from "./gen/honcho/v1/search_pb.js";
import { SessionService } from "./gen/honcho/v1/session_pb.js";
import { WebhookService } from "./gen/honcho/v1/webhook_pb.js";
import { DreamType, WorkspaceService } from "./gen/honcho/v1/workspace_pb.js";

export const DEFAULT_ADDRESS = "localhost:50051";
/** CreateMessages takes 1-100 messages; addMessages splits larger lists. */
export const MAX_BATCH = 100;
const PAGE_SIZE = 100;
const UPLOAD_CHUNK = 64 * 1024;

export interface RetryOptions {
  /** Attempts in all, including the first (default 5). */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export interface HonchoOptions {
  /** host:port (plaintext unless `tls`), or an http:// / https:// URL. Default HONCHO_ADDRESS or localhost:50051. */
  address?: string;
  /** Default HONCHO_WORKSPACE_ID or "default". */
  workspaceId?: string;
  /** Sent as `authorization: Bearer <token>`. Default HONCHO_API_KEY. */
  token?: string;
  /** TLS: `true` verifies the server against the system's roots; an object gives a CA of your own and, for
   * a server that asks for client certificates (mTLS), this client's certificate and key (PEM). */
  tls?: boolean | TlsOptions;
  /** Deadline of unary calls (default 30 s; all retry attempts included). */
  timeoutMs?: number;
  /** Deadline of streamed chat and imports (default 300 s). */
  streamTimeoutMs?: number;
  /** Retries of UNAVAILABLE with exponential backoff and full jitter; `false` disables. */
  retry?: Partial<RetryOptions> | false;
  interceptors?: Interceptor[];
  /** Use a transport of your own (address, tls and interceptors are then ignored). */
  transport?: Transport;
}

export interface TlsOptions {
  /** PEM certificate(s) of the CA that signed the server's certificate (default: the system's roots). */
  ca?: string | Buffer;
  /** PEM certificate chain presented to the server (mTLS); needs `key`. */
  cert?: string | Buffer;
  /** PEM private key of `cert`. */
  key?: string | Buffer;
  /** The name to check the server's certificate against, when it differs from the address's host. */
  serverName?: string;
}

export type Json = JsonObject;
export type Filters = JsonObject;

export interface Message {
  id: string;
  workspaceId: string;
  sessionId: string;
  peerId: string;
  content: string;
  metadata: JsonObject;
  tokenCount: number;
  sequence: number;
  createdAt: Date | undefined;
  /** Fused relevance on search results (higher is better). */
  score?: number;
}

export interface MessageCreate {
  peerId: string;
  content: string;
  metadata?: JsonObject;
  configuration?: { reasoning?: { enabled?: boolean; customInstructions?: string } };
  createdAt?: Date;
}

export interface Summary {
  content: string;
  type: "short" | "long" | "unspecified";
  lastMessageId: string;
  lastMessageSequence: number;
  tokenCount: number;
  createdAt: Date | undefined;
}

export interface SessionMember {
  peerId: string;
  observeMe: boolean | undefined;
  observeOthers: boolean | undefined;
  joinedAt: Date | undefined;
  leftAt: Date | undefined;
}

export interface SessionPeerConfig {
  observeMe?: boolean;
  observeOthers?: boolean;
}

export interface Conclusion {
  id: string;
  observerId: string;
  observedId: string;
  sessionId: string;
  content: string;
  level: "explicit" | "deductive" | "inductive" | "contradiction" | "unspecified";
  premiseIds: string[];
  sourceMessageIds: string[];
  timesDerived: number;
  createdAt: Date | undefined;
  valid: boolean;
  supersededById: string;
}

export interface ChatCompletion {
  finishReason: "stop" | "max_tokens" | "unspecified";
  inputTokens: number;
  outputTokens: number;
  conclusionIds: string[];
}

export interface ChatAnswer {
  content: string;
  inputTokens: number;
  outputTokens: number;
  conclusionIds: string[];
}

export interface QueueCounts {
  pending: number;
  inProgress: number;
  completed: number;
  failed: number;
}

export interface QueueStatus {
  totals: QueueCounts;
  sessions: Record<string, QueueCounts>;
}

export type ReasoningLevelName = "minimal" | "low" | "medium" | "high" | "max";

export interface ChatOptions {
  /** The peer asked about (default: the asking peer itself). */
  target?: Peer | string;
  session?: Session | string;
  reasoningLevel?: ReasoningLevelName;
  /** JSON Schema: the answer is then JSON that validates. */
  responseFormat?: JsonObject;
  /** Answer only from these scopes' sessions (one scope or a list; their union). */
  scope?: Scope | string | (Scope | string)[];
  /** Answer only from these sessions (an allowlist). */
  sessions?: (Session | string)[];
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface SearchOptions {
  filters?: Filters;
  limit?: number;
  /** Only messages of this scope's sessions (workspace search). */
  scope?: Scope | string;
}

/** A session of a scope (`scope.status()`). */
export interface ScopeMember {
  sessionId: string;
  /** When it joined: the scope's reads see it from then on. */
  addedAt: Date | undefined;
  /** Explicit conclusions drawn in it that the scope's reads see. */
  conclusions: number;
}

export interface ListOptions {
  filters?: Filters;
  reverse?: boolean;
  pageSize?: number;
}

export interface RepresentationOptions {
  /** The peer it is about (default: the peer asked). */
  target?: Peer | string;
  session?: Session | string;
  searchQuery?: string;
  searchTopK?: number;
  searchMaxDistance?: number;
  includeMostFrequent?: boolean;
  maxConclusions?: number;
  /** Only explicit conclusions drawn in these scopes' sessions (representation only). */
  scope?: Scope | string | (Scope | string)[];
  /** Only explicit conclusions drawn in these sessions (representation only). */
  sessions?: (Session | string)[];
}

export interface ContextOptions {
  tokens?: number;
  summary?: boolean;
  peerTarget?: Peer | string;
  peerPerspective?: Peer | string;
  searchQuery?: string;
  searchTopK?: number;
  searchMaxDistance?: number;
  includeMostFrequent?: boolean;
  maxConclusions?: number;
  limitToSession?: boolean;
  /** The representation sees only this scope's sessions (needs peerTarget). */
  scope?: Scope | string;
  /** The representation sees only these sessions, this one among them (needs peerTarget). */
  sessions?: (Session | string)[];
}

/** Representation and peer card together (`peer.context()`). */
export interface PeerContext {
  peerId: string;
  targetId: string;
  representation: string;
  peerCard: string[];
}

/** A URL the workspace's events are POSTed to. */
export interface WebhookEndpoint {
  id: string;
  workspaceId: string;
  url: string;
  createdAt: Date | undefined;
}

/** A file to upload: a Blob/File, raw bytes, or Honcho's `{ filename, content, content_type }`. */
export type UploadInput = Blob | Uint8Array | { filename: string; content: Uint8Array; content_type?: string };

/** An explicit conclusion to store: its text, or Honcho's `{ content, session_id }`. */
export type ConclusionInput = string | { content: string; sessionId?: string; session_id?: string | null };

export type ConclusionListOptions = ListOptions & { session?: Session | string; includeInvalid?: boolean };

/**
 * What one peer holds about another (Honcho SDK's ConclusionsView): `list`, `query`,
 * `create`, `delete`, `representation`. Calling it, `peer.conclusions(about)`, lists what the
 * peer concluded about `about`.
 */
export type ConclusionsView = ((about?: Peer | string, options?: ConclusionListOptions) => AsyncGenerator<Conclusion>) & {
  readonly observerId: string;
  readonly observedId: string;
  list(options?: ConclusionListOptions): AsyncGenerator<Conclusion>;
  query(query: string, topK?: number, distance?: number, filters?: Filters): Promise<Conclusion[]>;
  create(conclusions: ConclusionInput | ConclusionInput[]): Promise<Conclusion[]>;
  delete(conclusionId: string): Promise<void>;
  representation(options?: Omit<RepresentationOptions, "target">): Promise<string>;
};

export type EventName =
  | "messages_created"
  | "conclusions_derived"
  | "conclusion_invalidated"
  | "summary_created"
  | "peer_card_updated"
  | "queue_drained"
  | "embeddings_drained";

export interface HonchoEvent {
  type: EventName | "unspecified";
  workspaceId: string;
  sessionId: string;
  peerId: string;
  time: Date | undefined;
  data: JsonObject;
}

// ---------------------------------------------------------------------------- conversions

const idOf = (v: { id: string } | string | undefined): string =>
  v === undefined ? "" : typeof v === "string" ? v : v.id;
const idsOf = (v: { id: string } | string | ({ id: string } | string)[] | undefined): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v.map(idOf) : [idOf(v)];
const date = (ts: Timestamp | undefined): Date | undefined => (ts ? timestampDate(ts) : undefined);

function toMessage(m: MessagePb, score?: number): Message {
  const out: Message = {
    id: m.id,
    workspaceId: m.workspaceId,
    sessionId: m.sessionId,
    peerId: m.peerId,
    content: m.content,
    metadata: m.metadata ?? {},
    tokenCount: m.tokenCount,
    sequence: Number(m.sequence),
    createdAt: date(m.createTime),
  };
  if (score !== undefined) out.score = score;
  return out;
}

function toSummary(s: SummaryPb | undefined): Summary | undefined {
  if (!s) return undefined;
  const type = s.type === SummaryType.SHORT ? "short" : s.type === SummaryType.LONG ? "long" : "unspecified";
  return {
    content: s.content,
    type,
    lastMessageId: s.lastMessageId,
    lastMessageSequence: Number(s.lastMessageSequence),
    tokenCount: s.tokenCount,
    createdAt: date(s.createTime),
  };
}

function toMember(p: SessionPeer): SessionMember {
  return {
    peerId: p.peerId,
    observeMe: p.configuration?.observeMe,
    observeOthers: p.configuration?.observeOthers,
    joinedAt: date(p.joinTime),
    leftAt: date(p.leaveTime),
  };
}

const LEVELS: Record<number, Conclusion["level"]> = {
  [ConclusionLevel.EXPLICIT]: "explicit",
  [ConclusionLevel.DEDUCTIVE]: "deductive",
  [ConclusionLevel.INDUCTIVE]: "inductive",
  [ConclusionLevel.CONTRADICTION]: "contradiction",
};

function toConclusion(c: ConclusionPb): Conclusion {
  return {
    id: c.id,
    observerId: c.observerId,
    observedId: c.observedId,
    sessionId: c.sessionId,
    content: c.content,
    level: LEVELS[c.level] ?? "unspecified",
    premiseIds: [...c.premiseIds],
    sourceMessageIds: [...c.sourceMessageIds],
    timesDerived: c.timesDerived,
    createdAt: date(c.createTime),
    valid: c.valid,
    supersededById: c.supersededById,
  };
}

function toWebhook(w: WebhookEndpointPb): WebhookEndpoint {
  return { id: w.id, workspaceId: w.workspaceId, url: w.url, createdAt: date(w.createTime) };
}

async function uploadBytes(file: UploadInput): Promise<{ data: Uint8Array; filename: string; contentType: string }> {
  if (file instanceof Uint8Array) return { data: file, filename: "upload", contentType: "" };
  if (file instanceof Blob) {
    const name = (file as Blob & { name?: string }).name;
    return { data: new Uint8Array(await file.arrayBuffer()), filename: name || "upload", contentType: file.type };
  }
  return { data: file.content, filename: file.filename, contentType: file.content_type ?? "" };
}

function toCounts(q: QueueCountsPb | undefined): QueueCounts {
  return {
    pending: Number(q?.pending ?? 0),
    inProgress: Number(q?.inProgress ?? 0),
    completed: Number(q?.completed ?? 0),
    failed: Number(q?.failed ?? 0),
  };
}

const REASONING: Record<ReasoningLevelName, ReasoningLevel> = {
  minimal: ReasoningLevel.MINIMAL,
  low: ReasoningLevel.LOW,
  medium: ReasoningLevel.MEDIUM,
  high: ReasoningLevel.HIGH,
  max: ReasoningLevel.MAX,
};

const EVENTS: Record<EventName, EventType> = {
  messages_created: EventType.MESSAGES_CREATED,
  conclusions_derived: EventType.CONCLUSIONS_DERIVED,
  conclusion_invalidated: EventType.CONCLUSION_INVALIDATED,
  summary_created: EventType.SUMMARY_CREATED,
  peer_card_updated: EventType.PEER_CARD_UPDATED,
  queue_drained: EventType.QUEUE_DRAINED,
  embeddings_drained: EventType.EMBEDDINGS_DRAINED,
};

function messageInput(m: MessageCreate): MessageInitShape<typeof MessageInputSchema> {
  return {
    peerId: m.peerId,
    content: m.content,
    metadata: m.metadata,
    configuration: m.configuration,
    createTime: m.createdAt ? timestampFromDate(m.createdAt) : undefined,
  };
}

/** Peers to add to a session: ids or handles, `[peer, config]` pairs, or `{ id: config }`. */
export type SessionPeers = Iterable<Peer | string | [Peer | string, SessionPeerConfig]> | Record<string, SessionPeerConfig>;

function members(peers: SessionPeers): Record<string, MessageInitShape<typeof SessionPeerConfigurationSchema>> {
  const out: Record<string, MessageInitShape<typeof SessionPeerConfigurationSchema>> = {};
  if (typeof (peers as Iterable<unknown>)[Symbol.iterator] !== "function") {
    for (const [id, config] of Object.entries(peers as Record<string, SessionPeerConfig>)) out[id] = { ...config };
    return out;
  }
  for (const item of peers as Iterable<Peer | string | [Peer | string, SessionPeerConfig]>) {
    const [peer, config] = Array.isArray(item) ? item : [item, {}];
    out[idOf(peer)] = { ...config };
  }
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------- transport

/** The generated Connect clients of every service, on the wrapper's transport. */
export interface Clients {
  workspaces: Client<typeof WorkspaceService>;
  peers: Client<typeof PeerService>;
  sessions: Client<typeof SessionService>;
  messages: Client<typeof MessageService>;
  search: Client<typeof SearchService>;
  conclusions: Client<typeof ConclusionService>;
  dialectic: Client<typeof DialecticService>;
  events: Client<typeof EventService>;
  webhooks: Client<typeof WebhookService>;
  keys: Client<typeof KeyService>;
  scopes: Client<typeof ScopeService>;
}

class Caller {
  readonly rpc: Clients;
  private readonly retry: RetryOptions;

  constructor(
    transport: Transport,
    private readonly timeoutMs: number,
    readonly streamTimeoutMs: number,
    retry: Partial<RetryOptions> | false | undefined,
  ) {
    this.rpc = {
      workspaces: createClient(WorkspaceService, transport),
      peers: createClient(PeerService, transport),
      sessions: createClient(SessionService, transport),
      messages: createClient(MessageService, transport),
      search: createClient(SearchService, transport),
      conclusions: createClient(ConclusionService, transport),
      dialectic: createClient(DialecticService, transport),
      events: createClient(EventService, transport),
      webhooks: createClient(WebhookService, transport),
      keys: createClient(KeyService, transport),
      scopes: createClient(ScopeService, transport),
    };
    this.retry =
      retry === false
        ? { maxAttempts: 1, initialBackoffMs: 0, maxBackoffMs: 0, multiplier: 1 }
        : { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 5000, multiplier: 2, ...retry };
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.retry.maxBackoffMs, this.retry.initialBackoffMs * this.retry.multiplier ** (attempt - 1));
    return Math.random() * cap; // full jitter
  }

  /** A unary call: one deadline across attempts, UNAVAILABLE retried, typed errors. */
  async unary<T>(call: (options: CallOptions) => Promise<T>, timeoutMs = this.timeoutMs, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call({ timeoutMs: Math.max(1, deadline - Date.now()), signal });
      } catch (error) {
        const err = ConnectError.from(error);
        const pause = this.backoff(attempt);
        if (err.code !== Code.Unavailable || attempt >= this.retry.maxAttempts || Date.now() + pause >= deadline) {
          throw toHonchoError(error);
        }
        await sleep(pause);
      }
    }
  }

  /** A server stream: retried on UNAVAILABLE only before the first message arrived;
   * leaving the loop early cancels the call (and the server's work). */
  async *stream<T>(
    open: (options: CallOptions) => AsyncIterable<T>,
    timeoutMs: number | undefined,
    signal?: AbortSignal,
    onHeader?: (headers: Headers) => void,
  ): AsyncGenerator<T> {
    // The deadline is kept here rather than by Connect's `timeoutMs`, whose timer is not
    // cleared when a stream is abandoned early (it would hold the process open until it
    // fires); the server still learns it from the grpc-timeout header.
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const controller = new AbortController();
      const abort = () => controller.abort(signal?.reason);
      if (signal?.aborted) abort();
      signal?.addEventListener("abort", abort, { once: true });
      let timer: NodeJS.Timeout | undefined;
      const headers: Record<string, string> = {};
      if (deadline !== undefined) {
        const left = Math.max(1, deadline - Date.now());
        headers["grpc-timeout"] = `${Math.min(left, 99_999_999)}m`;
        timer = setTimeout(() => controller.abort(new ConnectError("deadline exceeded", Code.DeadlineExceeded)), left);
      }
      let received = false;
      try {
        for await (const item of open({ headers, signal: controller.signal, onHeader })) {
          received = true;
          yield item;
        }
        return;
      } catch (error) {
        const err = ConnectError.from(error);
        if (received || err.code !== Code.Unavailable || attempt >= this.retry.maxAttempts) {
          throw toHonchoError(error);
        }
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        controller.abort();
      }
      await sleep(this.backoff(attempt));
    }
  }

  /** Follows next_page_token until the end. */
  async *pages<R extends { nextPageToken: string }, T>(
    call: (pageToken: string, options: CallOptions) => Promise<R>,
    items: (response: R) => T[],
  ): AsyncGenerator<T> {
    let token = "";
    do {
      const response = await this.unary((o) => call(token, o));
      yield* items(response);
      token = response.nextPageToken;
    } while (token);
  }
}

// ---------------------------------------------------------------------------- chat stream

/** A streamed answer: `for await (const delta of stream)`; afterwards `completion` and `text`. */
export class ChatStream implements AsyncIterable<string> {
  completion: ChatCompletion | undefined;
  text = "";

  constructor(private readonly events: AsyncIterable<StreamChatResponse>) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    for await (const event of this.events) {
      if (event.event.case === "delta") {
        this.text += event.event.value.content;
        yield event.event.value.content;
      } else if (event.event.case === "completion") {
        const c = event.event.value;
        this.completion = {
          finishReason:
            c.finishReason === FinishReason.STOP ? "stop" : c.finishReason === FinishReason.MAX_TOKENS ? "max_tokens" : "unspecified",
          inputTokens: c.usage?.inputTokens ?? 0,
          outputTokens: c.usage?.outputTokens ?? 0,
          conclusionIds: [...c.conclusionIds],
        };
      }
    }
  }

  /** Consume the rest and return the whole answer. */
  async read(): Promise<string> {
    for await (const _ of this) {
      // drain
    }
    return this.text;
  }
}

// ---------------------------------------------------------------------------- handles

/** A peer handle; no call is made until you use it. */
export class Peer {
  readonly workspaceId: string;
  metadata: JsonObject | undefined;
  configuration: JsonObject | undefined;

  constructor(
    private readonly honcho: Honcho,
    readonly id: string,
    resource?: PeerPb,
  ) {
    this.workspaceId = honcho.workspaceId;
    if (resource) this.load(resource);
  }

  private load(p: PeerPb | undefined): this {
    if (p) {
      this.metadata = p.metadata ?? {};
      this.configuration = p.configuration ? (toJson(PeerConfigurationSchema, p.configuration) as JsonObject) : {};
    }
    return this;
  }

  private get c(): Caller {
    return this.honcho.caller;
  }

  /** A message by this peer, for `session.addMessages([...])`. */
  message(content: string, options: Omit<MessageCreate, "peerId" | "content"> = {}): MessageCreate {
    return { peerId: this.id, content, ...options };
  }

  /** Create the peer if missing (metadata and configuration apply only then). */
  async getOrCreate(options: { metadata?: JsonObject; configuration?: { observeMe?: boolean } } = {}): Promise<this> {
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.getOrCreatePeer({ workspaceId: this.workspaceId, peerId: this.id, ...options }, o),
    );
    return this.load(r.peer);
  }

  async refresh(): Promise<this> {
    const r = await this.c.unary((o) => this.c.rpc.peers.getPeer({ workspaceId: this.workspaceId, peerId: this.id }, o));
    return this.load(r.peer);
  }

  async getMetadata(): Promise<JsonObject> {
    await this.refresh();
    return this.metadata ?? {};
  }

  async setMetadata(metadata: JsonObject): Promise<void> {
    await this.getOrCreate();
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.updatePeer(
        { peer: { workspaceId: this.workspaceId, id: this.id, metadata }, updateMask: { paths: ["metadata"] } },
        o,
      ),
    );
    this.load(r.peer);
  }

  async getConfiguration(): Promise<JsonObject> {
    await this.refresh();
    return this.configuration ?? {};
  }

  /** e.g. `{ observeMe: false }`. */
  async setConfiguration(configuration: MessageInitShape<typeof PeerConfigurationSchema>): Promise<void> {
    await this.getOrCreate();
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.updatePeer(
        { peer: { workspaceId: this.workspaceId, id: this.id, configuration }, updateMask: { paths: ["configuration"] } },
        o,
      ),
    );
    this.load(r.peer);
  }

  async delete(): Promise<void> {
    await this.c.unary((o) =>
      this.c.rpc.peers.deletePeer({ workspaceId: this.workspaceId, peerId: this.id, requestId: randomUUID() }, o),
    );
  }

  /** Sessions this peer belongs to, page by page. */
  sessions(options: ListOptions = {}): AsyncGenerator<Session> {
    return this.c.pages(
      (pageToken, o) =>
        this.c.rpc.peers.listPeerSessions(
          {
            workspaceId: this.workspaceId,
            peerId: this.id,
            pageToken,
            pageSize: options.pageSize ?? PAGE_SIZE,
            filters: options.filters,
            reverse: options.reverse,
          },
          o,
        ),
      (r) => r.sessions.map((s) => new Session(this.honcho, s.id, s)),
    );
  }

  private query(query: string, options: ChatOptions): MessageInitShape<typeof ChatQuerySchema> {
    return {
      workspaceId: this.workspaceId,
      peerId: this.id,
      query,
      targetId: idOf(options.target),
      sessionId: idOf(options.session),
      reasoningLevel: options.reasoningLevel ? REASONING[options.reasoningLevel] : ReasoningLevel.UNSPECIFIED,
      responseFormat: options.responseFormat,
      scopeIds: idsOf(options.scope),
      sessionIds: idsOf(options.sessions),
    };
  }

  /**
   * Ask what this peer knows about `target` (default itself): the answer text, or with
   * `{ stream: true }` a ChatStream of text deltas (an async iterable).
   */
  chat(query: string, options: ChatOptions & { stream: true }): ChatStream;
  chat(query: string, options?: ChatOptions & { stream?: false }): Promise<string>;
  chat(query: string, options: ChatOptions & { stream?: boolean } = {}): ChatStream | Promise<string> {
    if (options.stream) {
      const q = this.query(query, options);
      const timeout = options.timeoutMs ?? this.c.streamTimeoutMs;
      return new ChatStream(this.c.stream((o) => this.c.rpc.dialectic.streamChat({ query: q }, o), timeout, options.signal));
    }
    return this.chatDetailed(query, options).then((a) => a.content);
  }

  /** Like `chat`, with token usage and the ids of the conclusions used. */
  async chatDetailed(query: string, options: ChatOptions = {}): Promise<ChatAnswer> {
    const q = this.query(query, options);
    const r = await this.c.unary(
      (o) => this.c.rpc.dialectic.chat({ query: q }, o),
      options.timeoutMs ?? this.c.streamTimeoutMs,
      options.signal,
    );
    return {
      content: r.content,
      inputTokens: r.usage?.inputTokens ?? 0,
      outputTokens: r.usage?.outputTokens ?? 0,
      conclusionIds: [...r.conclusionIds],
    };
  }

  /** `chat(query, { stream: true })` under the name Honcho's SDK uses. */
  chatStream(query: string, options: ChatOptions = {}): ChatStream {
    return this.chat(query, { ...options, stream: true });
  }

  /** The card this peer keeps about `target` (default itself); [] when none exists. */
  getCard(target?: Peer | string): Promise<string[]> {
    return this.card(target);
  }

  /** The card this peer keeps about `target` (default itself); [] when none exists. */
  async card(target?: Peer | string): Promise<string[]> {
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.getPeerCard({ workspaceId: this.workspaceId, peerId: this.id, targetId: idOf(target) }, o),
    );
    return [...r.entries];
  }

  async setCard(peerCard: string[], target?: Peer | string): Promise<string[]> {
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.setPeerCard({ workspaceId: this.workspaceId, peerId: this.id, targetId: idOf(target), entries: peerCard }, o),
    );
    return [...r.entries];
  }

  /**
   * What this peer holds about `options.target` (default itself), as markdown: Honcho's
   * `peer.representation({ target, session, ... })`. The former `representation(target,
   * options)` still works: a peer or id as first argument is the target.
   */
  async representation(options?: RepresentationOptions): Promise<string>;
  async representation(target: Peer | string, options?: Omit<RepresentationOptions, "target">): Promise<string>;
  async representation(first: Peer | string | RepresentationOptions = {}, more: RepresentationOptions = {}): Promise<string> {
    const options = typeof first === "string" || first instanceof Peer ? { ...more, target: first } : first;
    const { session, target, scope, sessions, ...rest } = options;
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.getRepresentation(
        {
          workspaceId: this.workspaceId,
          peerId: this.id,
          targetId: idOf(target),
          sessionId: idOf(session),
          scopeIds: idsOf(scope),
          sessionIds: idsOf(sessions),
          ...rest,
        },
        o,
      ),
    );
    return r.representation;
  }

  /** Representation and peer card of `target` (default itself) together. */
  async context(options: Omit<RepresentationOptions, "session" | "scope" | "sessions"> = {}): Promise<PeerContext> {
    const { target, ...rest } = options;
    const r = await this.c.unary((o) =>
      this.c.rpc.peers.getPeerContext({ workspaceId: this.workspaceId, peerId: this.id, targetId: idOf(target), ...rest }, o),
    );
    return { peerId: r.peerId, targetId: r.targetId, representation: r.representation, peerCard: [...r.peerCard] };
  }

  /** Messages written by this peer, best first. */
  search(query: string, options: SearchOptions = {}): Promise<Message[]> {
    return this.honcho.searchIn(query, options, { case: "peerId", value: this.id });
  }

  /** What this peer concluded about itself; call it, `peer.conclusions(about)`, to list. */
  get conclusions(): ConclusionsView {
    return this.conclusionsOf(this);
  }

  /** What this peer concluded about `target`. */
  conclusionsOf(target: Peer | string): ConclusionsView {
    const observed = idOf(target);
    const list = (about?: Peer | string, options: ConclusionListOptions = {}) => this.listConclusions(idOf(about) || observed, options);
    const toInput = (c: ConclusionInput) =>
      typeof c === "string" ? { content: c, sessionId: "" } : { content: c.content, sessionId: c.sessionId ?? c.session_id ?? "" };
    return Object.assign(list, {
      observerId: this.id,
      observedId: observed,
      list: (options: ConclusionListOptions = {}) => list(undefined, options),
      query: (query: string, topK?: number, distance?: number, filters?: Filters) =>
        this.queryConclusions(query, { about: observed, topK, maxDistance: distance, filters }),
      create: async (conclusions: ConclusionInput | ConclusionInput[]) =>
        this.storeConclusions(observed, (Array.isArray(conclusions) ? conclusions : [conclusions]).map(toInput)),
      delete: (conclusionId: string) => this.honcho.deleteConclusion(conclusionId),
      representation: (options: Omit<RepresentationOptions, "target"> = {}) => this.representation({ ...options, target: observed }),
    });
  }

  /** Semantic search among this peer's conclusions about `about` (default itself), nearest first. */
  async queryConclusions(
    query: string,
    options: { about?: Peer | string; topK?: number; maxDistance?: number; filters?: Filters } = {},
  ): Promise<Conclusion[]> {
    const r = await this.c.unary((o) =>
      this.c.rpc.conclusions.queryConclusions(
        {
          workspaceId: this.workspaceId,
          observerId: this.id,
          observedId: idOf(options.about) || this.id,
          query,
          topK: options.topK,
          maxDistance: options.maxDistance,
          filters: options.filters,
        },
        o,
      ),
    );
    return r.conclusions.map(toConclusion);
  }

  private listConclusions(observed: string, options: ConclusionListOptions): AsyncGenerator<Conclusion> {
    const where: JsonObject = { observer_id: this.id, observed_id: observed };
    if (options.session !== undefined) where.session_id = idOf(options.session);
    const filters = options.filters ? { AND: [where, options.filters] } : where;
    return this.c.pages(
      (pageToken, o) =>
        this.c.rpc.conclusions.listConclusions(
          {
            workspaceId: this.workspaceId,
            pageToken,
            pageSize: options.pageSize ?? PAGE_SIZE,
            filters,
            reverse: options.reverse,
            includeInvalid: options.includeInvalid,
          },
          o,
        ),
      (r) => r.conclusions.map(toConclusion),
    );
  }

  /** Store explicit conclusions this peer holds about `about` (default itself). */
  async addConclusions(contents: string[], options: { about?: Peer | string; session?: Session | string } = {}): Promise<Conclusion[]> {
    const session = idOf(options.session);
    return this.storeConclusions(idOf(options.about) || this.id, contents.map((content) => ({ content, sessionId: session })));
  }

  private async storeConclusions(observed: string, items: { content: string; sessionId: string }[]): Promise<Conclusion[]> {
    const conclusions: MessageInitShape<typeof ConclusionInputSchema>[] = items.map((c) => ({
      observerId: this.id,
      observedId: observed,
      sessionId: c.sessionId,
      content: c.content,
    }));
    const r = await this.c.unary((o) =>
      this.c.rpc.conclusions.createConclusions({ workspaceId: this.workspaceId, conclusions, requestId: randomUUID() }, o),
    );
    return r.conclusions.map(toConclusion);
  }
}

/** Prompt-ready context of a session. */
export class SessionContext {
  constructor(
    readonly sessionId: string,
    readonly messages: Message[],
    readonly summary: Summary | undefined,
    readonly peerRepresentation: string,
    readonly peerCard: string[],
  ) {}

  /** Chat Completions messages: the assistant peer's turns are `assistant`, others `user`. */
  toOpenAI(assistant: Peer | string): { role: "system" | "user" | "assistant"; content: string; name?: string }[] {
    const me = idOf(assistant);
    const parts: string[] = [];
    if (this.summary) parts.push(`Summary of the conversation so far:\n${this.summary.content}`);
    if (this.peerRepresentation) parts.push(`What is known about the user:\n${this.peerRepresentation}`);
    if (this.peerCard.length) parts.push(`Peer card:\n${this.peerCard.join("\n")}`);
    const out: { role: "system" | "user" | "assistant"; content: string; name?: string }[] = [];
    if (parts.length) out.push({ role: "system", content: parts.join("\n\n") });
    for (const m of this.messages) {
      out.push(m.peerId === me ? { role: "assistant", content: m.content } : { role: "user", content: m.content, name: m.peerId });
    }
    return out;
  }
}

/** A session handle; writing messages creates the session. */
export class Session {
  readonly workspaceId: string;
  metadata: JsonObject | undefined;
  configuration: JsonObject | undefined;
  active: boolean | undefined;

  constructor(
    private readonly honcho: Honcho,
    readonly id: string,
    resource?: SessionPb,
  ) {
    this.workspaceId = honcho.workspaceId;
    if (resource) this.load(resource);
  }

  private load(s: SessionPb | undefined): this {
    if (s) {
      this.metadata = s.metadata ?? {};
      this.configuration = s.configuration ? (toJson(ConfigurationSchema, s.configuration) as JsonObject) : {};
      this.active = s.active;
    }
    return this;
  }

  private get c(): Caller {
    return this.honcho.caller;
  }

  private get ids() {
    return { workspaceId: this.workspaceId, sessionId: this.id };
  }

  async getOrCreate(
    options: {
      metadata?: JsonObject;
      configuration?: MessageInitShape<typeof ConfigurationSchema>;
      peers?: SessionPeers;
      /** Scopes the session joins (created when missing), in the same call. */
      scopes?: (Scope | string)[];
    } = {},
  ): Promise<this> {
    const r = await this.c.unary((o) =>
      this.c.rpc.sessions.getOrCreateSession(
        {
          ...this.ids,
          metadata: options.metadata,
          configuration: options.configuration,
          peers: members(options.peers ?? []),
          scopeIds: idsOf(options.scopes),
        },
        o,
      ),
    );
    return this.load(r.session);
  }

  async refresh(): Promise<this> {
    const r = await this.c.unary((o) => this.c.rpc.sessions.getSession(this.ids, o));
    return this.load(r.session);
  }

  async getMetadata(): Promise<JsonObject> {
    await this.refresh();
    return this.metadata ?? {};
  }

  async setMetadata(metadata: JsonObject): Promise<void> {
    await this.getOrCreate();
    const r = await this.c.unary((o) =>
      this.c.rpc.sessions.updateSession(
        { session: { workspaceId: this.workspaceId, id: this.id, metadata }, updateMask: { paths: ["metadata"] } },
        o,
      ),
    );
    this.load(r.session);
  }

  async getConfiguration(): Promise<JsonObject> {
    await this.refresh();
    return this.configuration ?? {};
  }

  /** e.g. `{ reasoning: { enabled: false }, summary: { enabled: true } }`. */
  async setConfiguration(configuration: MessageInitShape<typeof ConfigurationSchema>): Promise<void> {
    await this.getOrCreate();
    const r = await this.c.unary((o) =>
      this.c.rpc.sessions.updateSession(
        { session: { workspaceId: this.workspaceId, id: this.id, configuration }, updateMask: { paths: ["configuration"] } },
        o,
      ),
    );
    this.load(r.session);
  }

  async delete(): Promise<void> {
    await this.c.unary((o) => this.c.rpc.sessions.deleteSession({ ...this.ids, requestId: randomUUID() }, o));
  }

  /** Copy messages (up to and including `messageId`) and members into a new session. */
  async clone(messageId?: string, options: { newSessionId?: string } = {}): Promise<Session> {
    const r = await this.c.unary((o) =>
      this.c.rpc.sessions.cloneSession({ ...this.ids, messageId, newSessionId: options.newSessionId, requestId: randomUUID() }, o),
    );
    return new Session(this.honcho, r.session!.id, r.session);
  }

  async getPeerConfiguration(peer: Peer | string): Promise<SessionPeerConfig> {
    const r = await this.c.unary((o) => this.c.rpc.sessions.getSessionPeerConfig({ ...this.ids, peerId: idOf(peer) }, o));
    return { observeMe: r.configuration?.observeMe, observeOthers: r.configuration?.observeOthers };
  }

  /** Set a member's observation settings; unset fields are left as they are. */
  async setPeerConfiguration(peer: Peer | string, configuration: SessionPeerConfig): Promise<SessionPeerConfig> {
    const r = await this.c.unary((o) =>
      this.c.rpc.sessions.setSessionPeerConfig({ ...this.ids, peerId: idOf(peer), configuration: { ...configuration } }, o),
    );
    return { observeMe: r.configuration?.observeMe, observeOthers: r.configuration?.observeOthers };
  }

  /** Add peers (created if missing): ids, handles, [peer, config] pairs or {id: config}. */
  async addPeers(peers: SessionPeers): Promise<SessionMember[]> {
    const r = await this.c.unary((o) => this.c.rpc.sessions.addPeers({ ...this.ids, peers: members(peers) }, o));
    return r.peers.map(toMember);
  }

  async setPeers(peers: SessionPeers): Promise<SessionMember[]> {
    const r = await this.c.unary((o) => this.c.rpc.sessions.setPeers({ ...this.ids, peers: members(peers) }, o));
    return r.peers.map(toMember);
  }

  async removePeers(peers: (Peer | string)[]): Promise<SessionMember[]> {
    const r = await this.c.unary((o) => this.c.rpc.sessions.removePeers({ ...this.ids, peerIds: peers.map(idOf) }, o));
    return r.peers.map(toMember);
  }

  async members(options: { includeInactive?: boolean } = {}): Promise<SessionMember[]> {
    const out: SessionMember[] = [];
    const pages = this.c.pages(
      (pageToken, o) =>
        this.c.rpc.sessions.listSessionPeers({ ...this.ids, pageToken, pageSize: PAGE_SIZE, includeInactive: options.includeInactive }, o),
      (r) => r.peers.map(toMember),
    );
    for await (const m of pages) out.push(m);
    return out;
  }

  async peers(): Promise<Peer[]> {
    return (await this.members()).map((m) => new Peer(this.honcho, m.peerId));
  }

  /**
   * Write messages in order; authors join the session. Sent in batches of at most 100, each
   * atomic and with its own idempotency key (a retried batch is never written twice).
   */
  async addMessages(messages: MessageCreate | MessageCreate[]): Promise<Message[]> {
    const all = Array.isArray(messages) ? messages : [messages];
    const out: Message[] = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.slice(i, i + MAX_BATCH).map(messageInput);
      const requestId = randomUUID();
      const r = await this.c.unary((o) => this.c.rpc.messages.createMessages({ ...this.ids, messages: batch, requestId }, o));
      out.push(...r.messages.map((m) => toMessage(m)));
    }
    return out;
  }

  /** Bulk load over one client stream; returns how many messages were stored. */
  async importMessages(
    messages: Iterable<MessageCreate> | AsyncIterable<MessageCreate>,
    options: { chunkSize?: number; timeoutMs?: number } = {},
  ): Promise<number> {
    const size = Math.min(Math.max(options.chunkSize ?? 1000, 1), 1000);
    const ids = this.ids;
    async function* chunks() {
      let chunk: MessageInitShape<typeof MessageInputSchema>[] = [];
      for await (const m of messages) {
        chunk.push(messageInput(m));
        if (chunk.length >= size) {
          yield { ...ids, messages: chunk };
          chunk = [];
        }
      }
      if (chunk.length) yield { ...ids, messages: chunk };
    }
    try {
      const r = await this.c.rpc.messages.importMessages(chunks(), { timeoutMs: options.timeoutMs ?? this.c.streamTimeoutMs });
      return Number(r.importedCount);
    } catch (error) {
      throw toHonchoError(error);
    }
  }

  /** Every message in order (newest first with `reverse`), fetched page by page. */
  messages(options: ListOptions = {}): AsyncGenerator<Message> {
    return this.c.pages(
      (pageToken, o) =>
        this.c.rpc.messages.listMessages(
          { ...this.ids, pageToken, pageSize: options.pageSize ?? PAGE_SIZE, filters: options.filters, reverse: options.reverse },
          o,
        ),
      (r) => r.messages.map((m) => toMessage(m)),
    );
  }

  async getMessage(messageId: string): Promise<Message> {
    const r = await this.c.unary((o) => this.c.rpc.messages.getMessage({ ...this.ids, messageId }, o));
    return toMessage(r.message!);
  }

  /** Replace a message's metadata (content is immutable); `message` or its id. */
  async updateMessage(message: Message | string, metadata: JsonObject): Promise<Message> {
    const id = idOf(message);
    const r = await this.c.unary((o) =>
      this.c.rpc.messages.updateMessage(
        { message: { workspaceId: this.workspaceId, sessionId: this.id, id, metadata }, updateMask: { paths: ["metadata"] } },
        o,
      ),
    );
    return toMessage(r.message!);
  }

  async deleteMessage(messageId: string): Promise<void> {
    await this.c.unary((o) => this.c.rpc.messages.deleteMessage({ ...this.ids, messageId, requestId: randomUUID() }, o));
  }

  /** Hybrid (semantic + full-text) search in this session, best first. */
  search(query: string, options: SearchOptions = {}): Promise<Message[]> {
    return this.honcho.searchIn(query, options, { case: "sessionId", value: this.id });
  }

  /** Prompt-ready context within a token budget. */
  async context(options: ContextOptions = {}): Promise<SessionContext> {
    const { peerTarget, peerPerspective, scope, sessions, ...rest } = options;
    const r = await this.c.unary((o) =>
      this.c.rpc.sessions.getContext(
        {
          ...this.ids,
          ...rest,
          peerTarget: idOf(peerTarget),
          peerPerspective: idOf(peerPerspective),
          scopeId: idOf(scope),
          sessionIds: idsOf(sessions),
        },
        o,
      ),
    );
    return new SessionContext(
      r.sessionId,
      r.messages.map((m) => toMessage(m)),
      toSummary(r.summary),
      r.peerRepresentation,
      [...r.peerCard],
    );
  }

  async summaries(): Promise<{ short: Summary | undefined; long: Summary | undefined }> {
    const r = await this.c.unary((o) => this.c.rpc.sessions.getSummaries(this.ids, o));
    return { short: toSummary(r.shortSummary), long: toSummary(r.longSummary) };
  }

  /** Upload text, JSON or PDF as messages by `peer` (one client stream: a header, then chunks). */
  async uploadFile(
    file: UploadInput,
    peer: Peer | string,
    options: {
      metadata?: JsonObject;
      configuration?: MessageInitShape<typeof MessageConfigurationSchema>;
      createdAt?: Date | string;
      filename?: string;
      contentType?: string;
    } = {},
  ): Promise<Message[]> {
    const { data, filename, contentType } = await uploadBytes(file);
    const createdAt = options.createdAt === undefined ? undefined : new Date(options.createdAt);
    const header = {
      ...this.ids,
      peerId: idOf(peer),
      filename: options.filename ?? filename,
      contentType: options.contentType ?? (contentType || "text/plain"),
      metadata: options.metadata,
      configuration: options.configuration,
      createTime: createdAt ? timestampFromDate(createdAt) : undefined,
    };
    async function* parts(): AsyncGenerator<MessageInitShape<typeof UploadFileRequestSchema>> {
      yield { part: { case: "header", value: header } };
      for (let i = 0; i < data.length; i += UPLOAD_CHUNK) yield { part: { case: "chunk", value: data.subarray(i, i + UPLOAD_CHUNK) } };
    }
    try {
      const r = await this.c.rpc.messages.uploadFile(parts(), { timeoutMs: this.c.streamTimeoutMs });
      return r.messages.map((m) => toMessage(m));
    } catch (error) {
      throw toHonchoError(error);
    }
  }

  /** What `peer` holds about `options.target` (default itself) within this session. */
  representation(peer: Peer | string, options: Omit<RepresentationOptions, "session"> = {}): Promise<string> {
    return new Peer(this.honcho, idOf(peer)).representation({ ...options, session: this.id });
  }

  queueStatus(options: { observer?: Peer | string; sender?: Peer | string } = {}): Promise<QueueStatus> {
    return this.honcho.queueStatus({ ...options, session: this.id });
  }
}

// ---------------------------------------------------------------------------- client

function secureSessionOptions(tls: TlsOptions): http2.SecureClientSessionOptions {
  if (Boolean(tls.cert) !== Boolean(tls.key)) throw new Error("tls.cert and tls.key go together (a client certificate for mTLS)");
  return { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.serverName };
}

/** A client for one workspace. */
/**
 * A scope: a named set of sessions that chat, representation, context and search can be
 * confined to (`scope`). Membership counts at once: nothing is copied.
 */
export class Scope {
  readonly workspaceId: string;
  metadata: JsonObject | undefined;
  createdAt: Date | undefined;

  constructor(
    private readonly honcho: Honcho,
    readonly id: string,
    resource?: ScopePb,
  ) {
    this.workspaceId = honcho.workspaceId;
    if (resource) {
      this.metadata = resource.metadata ?? {};
      this.createdAt = date(resource.createTime);
    }
  }

  private get c(): Caller {
    return this.honcho.caller;
  }

  private get ids() {
    return { workspaceId: this.workspaceId, scopeId: this.id };
  }

  /** Add existing sessions (at most 100 a call); how many were not members yet. */
  async addSessions(sessions: (Session | string)[]): Promise<number> {
    const r = await this.c.unary((o) => this.c.rpc.scopes.addScopeSessions({ ...this.ids, sessionIds: idsOf(sessions) }, o));
    return r.added;
  }

  /** Remove a session; false when it was not a member. */
  async removeSession(session: Session | string): Promise<boolean> {
    const r = await this.c.unary((o) => this.c.rpc.scopes.removeScopeSession({ ...this.ids, sessionId: idOf(session) }, o));
    return r.removed;
  }

  /** The member sessions, longest-standing first. */
  sessions(options: { reverse?: boolean; pageSize?: number } = {}): AsyncGenerator<Session> {
    return this.c.pages(
      (pageToken, o) =>
        this.c.rpc.scopes.listScopeSessions({ ...this.ids, pageToken, pageSize: options.pageSize ?? PAGE_SIZE, reverse: options.reverse }, o),
      (r) => r.sessions.map((s) => new Session(this.honcho, s.id, s)),
    );
  }

  /** Every member by session id: when it joined, what the scope sees of it. */
  async status(): Promise<Record<string, ScopeMember>> {
    const r = await this.c.unary((o) => this.c.rpc.scopes.getScopeStatus(this.ids, o));
    return Object.fromEntries(
      r.sessions.map((m) => [m.sessionId, { sessionId: m.sessionId, addedAt: date(m.addTime), conclusions: m.conclusions }]),
    );
  }
}

export class Honcho {
  readonly workspaceId: string;
  readonly address: string;
  /** @internal */
  readonly caller: Caller;
  private readonly sessionManager: Http2SessionManager | undefined;
  /** Filled by `refresh()`. */
  metadata: JsonObject | undefined;
  configuration: JsonObject | undefined;

  constructor(options: HonchoOptions = {}) {
    const env = typeof process !== "undefined" ? process.env : {};
    this.address = options.address ?? env.HONCHO_ADDRESS ?? DEFAULT_ADDRESS;
    this.workspaceId = options.workspaceId ?? env.HONCHO_WORKSPACE_ID ?? "default";
    const token = options.token ?? env.HONCHO_API_KEY;
    let transport = options.transport;
    if (!transport) {
      const baseUrl = /^https?:\/\//.test(this.address) ? this.address : `${options.tls ? "https" : "http"}://${this.address}`;
      this.sessionManager = new Http2SessionManager(
        baseUrl,
        { pingIntervalMs: 30_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
        typeof options.tls === "object" ? secureSessionOptions(options.tls) : undefined,
      );
      const auth: Interceptor = (next) => async (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      transport = createGrpcTransport({
        baseUrl,
        sessionManager: this.sessionManager,
        interceptors: [auth, ...(options.interceptors ?? [])],
      });
    }
    this.caller = new Caller(transport, options.timeoutMs ?? 30_000, options.streamTimeoutMs ?? 300_000, options.retry);
  }

  /** Close the HTTP/2 connection (pending calls fail). */
  close(): void {
    this.sessionManager?.abort();
  }

  /** The generated clients of every service on this client's transport, for raw calls. */
  get rpc(): Clients {
    return this.caller.rpc;
  }

  /** A peer handle; created now (get-or-create) with metadata, configuration or `create`. */
  async peer(id: string, options: { metadata?: JsonObject; configuration?: { observeMe?: boolean }; create?: boolean } = {}): Promise<Peer> {
    const peer = new Peer(this, id);
    if (options.create || options.metadata || options.configuration) {
      await peer.getOrCreate({ metadata: options.metadata, configuration: options.configuration });
    }
    return peer;
  }

  /** A session handle; created now with metadata, configuration, peers or `create`. */
  async session(
    id: string,
    options: {
      metadata?: JsonObject;
      configuration?: MessageInitShape<typeof ConfigurationSchema>;
      peers?: SessionPeers;
      scopes?: (Scope | string)[];
      create?: boolean;
    } = {},
  ): Promise<Session> {
    const session = new Session(this, id);
    // Got or created now, as Honcho's SDK does; `create: false` for a handle without a call.
    const { create: eager = true, ...rest } = options;
    if (eager || rest.metadata || rest.configuration || rest.peers || rest.scopes) await session.getOrCreate(rest);
    return session;
  }

  /** The scope, got or created now (metadata applies only on creation). */
  async scope(id: string, options: { metadata?: JsonObject } = {}): Promise<Scope> {
    const r = await this.caller.unary((o) =>
      this.caller.rpc.scopes.getOrCreateScope({ workspaceId: this.workspaceId, scopeId: id, metadata: options.metadata }, o),
    );
    return new Scope(this, id, r.scope);
  }

  /** An existing scope (NotFoundError else); never creates one. */
  async getScope(id: string): Promise<Scope> {
    const r = await this.caller.unary((o) => this.caller.rpc.scopes.getScope({ workspaceId: this.workspaceId, scopeId: id }, o));
    return new Scope(this, id, r.scope);
  }

  /** Every scope of the workspace, oldest first. */
  scopes(options: { reverse?: boolean; pageSize?: number } = {}): AsyncGenerator<Scope> {
    return this.caller.pages(
      (pageToken, o) =>
        this.caller.rpc.scopes.listScopes(
          { workspaceId: this.workspaceId, pageToken, pageSize: options.pageSize ?? PAGE_SIZE, reverse: options.reverse },
          o,
        ),
      (r) => r.scopes.map((s) => new Scope(this, s.id, s)),
    );
  }

  peers(options: ListOptions = {}): AsyncGenerator<Peer> {
    return this.caller.pages(
      (pageToken, o) =>
        this.caller.rpc.peers.listPeers(
          { workspaceId: this.workspaceId, pageToken, pageSize: options.pageSize ?? PAGE_SIZE, filters: options.filters, reverse: options.reverse },
          o,
        ),
      (r) => r.peers.map((p) => new Peer(this, p.id, p)),
    );
  }

  sessions(options: ListOptions = {}): AsyncGenerator<Session> {
    return this.caller.pages(
      (pageToken, o) =>
        this.caller.rpc.sessions.listSessions(
          { workspaceId: this.workspaceId, pageToken, pageSize: options.pageSize ?? PAGE_SIZE, filters: options.filters, reverse: options.reverse },
          o,
        ),
      (r) => r.sessions.map((s) => new Session(this, s.id, s)),
    );
  }

  /** Hybrid search over every message of the workspace, best first. */
  search(query: string, options: SearchOptions = {}): Promise<Message[]> {
    return this.searchIn(query, options, { case: undefined });
  }

  /** @internal */
  async searchIn(
    query: string,
    options: SearchOptions,
    scope: MessageInitShape<typeof SearchMessagesRequestSchema>["scope"],
  ): Promise<Message[]> {
    const r = await this.caller.unary((o) =>
      this.caller.rpc.search.searchMessages(
        { workspaceId: this.workspaceId, query, scope, filters: options.filters, limit: options.limit, scopeId: idOf(options.scope) },
        o,
      ),
    );
    return r.hits.map((h) => toMessage(h.message!, h.score));
  }

  /** Reload the workspace's metadata and configuration (NotFoundError if it does not exist). */
  async refresh(): Promise<this> {
    const r = await this.caller.unary((o) => this.caller.rpc.workspaces.getWorkspace({ workspaceId: this.workspaceId }, o));
    this.metadata = r.workspace?.metadata ?? {};
    this.configuration = r.workspace?.configuration ? (toJson(ConfigurationSchema, r.workspace.configuration) as JsonObject) : {};
    return this;
  }

  async getMetadata(): Promise<JsonObject> {
    const r = await this.caller.unary((o) => this.caller.rpc.workspaces.getOrCreateWorkspace({ workspaceId: this.workspaceId }, o));
    return r.workspace?.metadata ?? {};
  }

  async getConfiguration(): Promise<JsonObject> {
    const r = await this.caller.unary((o) => this.caller.rpc.workspaces.getOrCreateWorkspace({ workspaceId: this.workspaceId }, o));
    return r.workspace?.configuration ? (toJson(ConfigurationSchema, r.workspace.configuration) as JsonObject) : {};
  }

  async setConfiguration(configuration: MessageInitShape<typeof ConfigurationSchema>): Promise<void> {
    await this.caller.unary((o) => this.caller.rpc.workspaces.getOrCreateWorkspace({ workspaceId: this.workspaceId }, o));
    await this.caller.unary((o) =>
      this.caller.rpc.workspaces.updateWorkspace(
        { workspace: { id: this.workspaceId, configuration }, updateMask: { paths: ["configuration"] } },
        o,
      ),
    );
  }

  /** Ids of the workspaces this client may see. */
  workspaces(options: ListOptions = {}): AsyncGenerator<string> {
    return this.caller.pages(
      (pageToken, o) =>
        this.caller.rpc.workspaces.listWorkspaces(
          { pageToken, pageSize: options.pageSize ?? PAGE_SIZE, filters: options.filters, reverse: options.reverse },
          o,
        ),
      (r) => r.workspaces.map((w) => w.id),
    );
  }

  /** Queue a consolidation of what `observer` holds about `observed` (default itself); true if queued. */
  async scheduleDream(options: {
    observer: Peer | string;
    session?: Session | string;
    observed?: Peer | string;
    dreamType?: "omni" | "card_refresh";
  }): Promise<boolean> {
    const r = await this.caller.unary((o) =>
      this.caller.rpc.workspaces.scheduleDream(
        {
          workspaceId: this.workspaceId,
          observerId: idOf(options.observer),
          observedId: idOf(options.observed) || idOf(options.observer),
          sessionId: idOf(options.session),
          dreamType: options.dreamType === "card_refresh" ? DreamType.CARD_REFRESH : DreamType.OMNI,
        },
        o,
      ),
    );
    return r.queued;
  }

  /** Every conclusion of the workspace (`list`), and deleting one by id. */
  get conclusions(): {
    list(options?: ListOptions & { includeInvalid?: boolean }): AsyncGenerator<Conclusion>;
    delete(conclusionId: string): Promise<void>;
  } {
    return {
      list: (options = {}) =>
        this.caller.pages(
          (pageToken, o) =>
            this.caller.rpc.conclusions.listConclusions(
              {
                workspaceId: this.workspaceId,
                pageToken,
                pageSize: options.pageSize ?? PAGE_SIZE,
                filters: options.filters,
                reverse: options.reverse,
                includeInvalid: options.includeInvalid,
              },
              o,
            ),
          (r) => r.conclusions.map(toConclusion),
        ),
      delete: (conclusionId) => this.deleteConclusion(conclusionId),
    };
  }

  async deleteConclusion(conclusionId: string): Promise<void> {
    await this.caller.unary((o) => this.caller.rpc.conclusions.deleteConclusion({ workspaceId: this.workspaceId, conclusionId }, o));
  }

  /** A JWT scoped to this workspace (narrowed to a peer or session), or an admin key. Needs auth on. */
  async createKey(options: { peer?: Peer | string; session?: Session | string; expiresAt?: Date; admin?: boolean } = {}): Promise<string> {
    const r = await this.caller.unary((o) =>
      this.caller.rpc.keys.createKey(
        {
          workspaceId: options.admin ? "" : this.workspaceId,
          peerId: idOf(options.peer),
          sessionId: idOf(options.session),
          expireTime: options.expiresAt ? timestampFromDate(options.expiresAt) : undefined,
          admin: options.admin,
        },
        o,
      ),
    );
    return r.key;
  }

  /** Register a URL that receives the workspace's events (get-or-create by URL). */
  async createWebhook(url: string): Promise<WebhookEndpoint> {
    const r = await this.caller.unary((o) => this.caller.rpc.webhooks.createWebhookEndpoint({ workspaceId: this.workspaceId, url }, o));
    return toWebhook(r.endpoint!);
  }

  webhooks(): AsyncGenerator<WebhookEndpoint> {
    return this.caller.pages(
      (pageToken, o) => this.caller.rpc.webhooks.listWebhookEndpoints({ workspaceId: this.workspaceId, pageToken, pageSize: PAGE_SIZE }, o),
      (r) => r.endpoints.map(toWebhook),
    );
  }

  async deleteWebhook(endpoint: WebhookEndpoint | string): Promise<void> {
    await this.caller.unary((o) =>
      this.caller.rpc.webhooks.deleteWebhookEndpoint({ workspaceId: this.workspaceId, endpointId: idOf(endpoint) }, o),
    );
  }

  /** Queue a test event to every endpoint of the workspace. */
  async testWebhook(): Promise<void> {
    await this.caller.unary((o) => this.caller.rpc.webhooks.testWebhook({ workspaceId: this.workspaceId }, o));
  }

  async setMetadata(metadata: JsonObject): Promise<void> {
    await this.caller.unary((o) => this.caller.rpc.workspaces.getOrCreateWorkspace({ workspaceId: this.workspaceId }, o));
    await this.caller.unary((o) =>
      this.caller.rpc.workspaces.updateWorkspace({ workspace: { id: this.workspaceId, metadata }, updateMask: { paths: ["metadata"] } }, o),
    );
  }

  async queueStatus(options: { session?: Session | string; observer?: Peer | string; sender?: Peer | string } = {}): Promise<QueueStatus> {
    const r = await this.caller.unary((o) =>
      this.caller.rpc.workspaces.getQueueStatus(
        { workspaceId: this.workspaceId, sessionId: idOf(options.session), observerId: idOf(options.observer), senderId: idOf(options.sender) },
        o,
      ),
    );
    return {
      totals: toCounts(r.totals),
      sessions: Object.fromEntries(Object.entries(r.sessions).map(([k, v]) => [k, toCounts(v)])),
    };
  }

  async deleteWorkspace(workspaceId = this.workspaceId): Promise<void> {
    await this.caller.unary((o) => this.caller.rpc.workspaces.deleteWorkspace({ workspaceId, requestId: randomUUID() }, o));
  }

  /**
   * Watch events (no deadline); break out of the loop or abort `signal` to stop. `onReady`
   * runs once the server listens: nothing committed after it is missed.
   */
  async *events(
    options: {
      session?: Session | string;
      peer?: Peer | string;
      types?: EventName[];
      signal?: AbortSignal;
      onReady?: () => void;
    } = {},
  ): AsyncGenerator<HonchoEvent> {
    const names = Object.fromEntries(Object.entries(EVENTS).map(([k, v]) => [v, k])) as Record<number, EventName>;
    const stream = this.caller.stream(
      (o) =>
        this.caller.rpc.events.watchEvents(
          {
            workspaceId: this.workspaceId,
            sessionId: idOf(options.session),
            peerId: idOf(options.peer),
            types: (options.types ?? []).map((t) => EVENTS[t]),
          },
          o,
        ),
      undefined,
      options.signal,
      () => options.onReady?.(),
    );
    for await (const r of stream) {
      const e = r.event;
      if (!e) continue;
      yield { type: names[e.type] ?? "unspecified", workspaceId: e.workspaceId, sessionId: e.sessionId, peerId: e.peerId, time: date(e.time), data: e.data ?? {} };
    }
  }
}
