export {
  ChatStream,
  DEFAULT_ADDRESS,
  Honcho,
  MAX_BATCH,
  Peer,
  Scope,
  Session,
  SessionContext,
  type ChatAnswer,
  type ChatCompletion,
  type ChatOptions,
  type Clients,
  type Conclusion,
  type ConclusionInput,
  type ConclusionListOptions,
  type ConclusionsView,
  type ContextOptions,
  type EventName,
  type Filters,
  type HonchoEvent,
  type HonchoOptions,
  type ListOptions,
  type Message,
  type MessageCreate,
  type PeerContext,
  type QueueCounts,
  type QueueStatus,
  type ReasoningLevelName,
  type RepresentationOptions,
  type RetryOptions,
  type ScopeMember,
  type TlsOptions,
  type SearchOptions,
  type SessionMember,
  type SessionPeerConfig,
  type SessionPeers,
  type Summary,
  type UploadInput,
  type WebhookEndpoint,
} from "./client.js";
export * from "./errors.js";
// The service descriptors, so that every RPC can be called with Connect directly.
export { ConclusionService } from "./gen/honcho/v1/conclusion_pb.js";
export { DialecticService } from "./gen/honcho/v1/dialectic_pb.js";
export { EventService } from "./gen/honcho/v1/event_pb.js";
export { KeyService } from "./gen/honcho/v1/key_pb.js";
export { MessageService } from "./gen/honcho/v1/message_pb.js";
export { PeerService } from "./gen/honcho/v1/peer_pb.js";
export { ScopeService } from "./gen/honcho/v1/scope_pb.js";
export { SearchService } from "./gen/honcho/v1/search_pb.js";
export { SessionService } from "./gen/honcho/v1/session_pb.js";
export { WebhookService } from "./gen/honcho/v1/webhook_pb.js";
export { WorkspaceService } from "./gen/honcho/v1/workspace_pb.js";
export * as proto from "./proto.js";
