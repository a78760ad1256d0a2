"""Python client for honcho-grpc: memory and theory-of-mind for AI agents, over gRPC.

    from honcho_grpc_client import Honcho          # or AsyncHoncho

    honcho = Honcho(address="localhost:50051", workspace_id="my-app")
    alice = honcho.peer("alice")
    session = honcho.session("s1")
    session.add_messages([alice.message("I love hiking in the Alps")])
    print(alice.chat("What does alice enjoy?"))
"""

from honcho_grpc_client._base import NO_RETRY, RetryPolicy
from honcho_grpc_client.aio import (
    AsyncChatStream,
    AsyncConclusionsView,
    AsyncEventStream,
    AsyncHoncho,
    AsyncPeer,
    AsyncScope,
    AsyncSession,
    AsyncWorkspaceConclusions,
)
from honcho_grpc_client.client import (
    ChatStream,
    ConclusionsView,
    EventStream,
    Honcho,
    Peer,
    Scope,
    Session,
    WorkspaceConclusions,
)
from honcho_grpc_client.errors import (
    AbortedError,
    AlreadyExistsError,
    CallCancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    HonchoError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from honcho_grpc_client.types import (
    ChatAnswer,
    ChatCompletion,
    Conclusion,
    ConclusionCreate,
    Event,
    Message,
    MessageCreate,
    PeerContext,
    QueueCounts,
    QueueStatus,
    ScopeMember,
    SessionContext,
    SessionMember,
    SessionPeerConfig,
    Summaries,
    Summary,
    WebhookEndpoint,
)

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "AbortedError",
    "AlreadyExistsError",
    "AsyncChatStream",
    "AsyncConclusionsView",
    "AsyncEventStream",
    "AsyncHoncho",
    "AsyncPeer",
    "AsyncScope",
    "AsyncSession",
    "AsyncWorkspaceConclusions",
    "CallCancelledError",
    "ChatAnswer",
    "ChatCompletion",
    "ChatStream",
    "Conclusion",
    "ConclusionCreate",
    "ConclusionsView",
    "DataLossError",
    "DeadlineExceededError",
    "Event",
    "EventStream",
    "FailedPreconditionError",
    "FieldViolation",
    "Honcho",
    "HonchoError",
    "InternalError",
    "InvalidArgumentError",
    "Message",
    "MessageCreate",
    "NotFoundError",
    "OutOfRangeError",
    "Peer",
    "PeerContext",
    "PermissionDeniedError",
    "QueueCounts",
    "QueueStatus",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Scope",
    "ScopeMember",
    "Session",
    "SessionContext",
    "SessionMember",
    "SessionPeerConfig",
    "Summaries",
    "Summary",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "WebhookEndpoint",
    "WorkspaceConclusions",
]
