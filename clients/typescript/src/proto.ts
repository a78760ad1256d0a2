// Every generated message, enum and service descriptor of honcho.v1, for raw calls with
// Connect (`createClient(PeerService, transport)`, or `honcho.rpc.peers` on the wrapper's
// own transport) and for building requests: `import { proto } from "@honcho-grpc/client"`.
export * from "./gen/honcho/v1/conclusion_pb.js";
export * from "./gen/honcho/v1/dialectic_pb.js";
export * from "./gen/honcho/v1/event_pb.js";
export * from "./gen/honcho/v1/key_pb.js";
export * from "./gen/honcho/v1/message_pb.js";
export * from "./gen/honcho/v1/peer_pb.js";
export * from "./gen/honcho/v1/resources_pb.js";
export * from "./gen/honcho/v1/scope_pb.js";
export * from "./gen/honcho/v1/search_pb.js";
export * from "./gen/honcho/v1/session_pb.js";
export * from "./gen/honcho/v1/webhook_pb.js";
export * from "./gen/honcho/v1/workspace_pb.js";
export * from "./gen/google/rpc/error_details_pb.js";
