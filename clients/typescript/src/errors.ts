// Typed errors carrying the server's google.rpc.Status details: ErrorInfo (reason, domain,
// metadata), BadRequest (field violations) and RetryInfo (retry delay).
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

export { Code };

export interface FieldViolation {
  field: string;
  description: string;
}

export class HonchoError extends Error {
  /** The gRPC status code (Connect's `Code`, numerically identical to gRPC's). */
  readonly code: Code;
  /** Stable UPPER_SNAKE reason from ErrorInfo, e.g. `SESSION_NOT_FOUND`. */
  readonly reason: string;
  readonly domain: string;
  /** ErrorInfo metadata: the values named in the message (lowerCamel keys). */
  readonly metadata: Record<string, string>;
  /** BadRequest field violations (INVALID_ARGUMENT). */
  readonly fieldViolations: FieldViolation[];
  /** RetryInfo delay in milliseconds, when the server suggested one. */
  readonly retryDelayMs: number | undefined;

  constructor(
    message: string,
    init: {
      code: Code;
      reason?: string;
      domain?: string;
      metadata?: Record<string, string>;
      fieldViolations?: FieldViolation[];
      retryDelayMs?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.reason = init.reason ?? "";
    this.domain = init.domain ?? "";
    this.metadata = init.metadata ?? {};
    this.fieldViolations = init.fieldViolations ?? [];
    this.retryDelayMs = init.retryDelayMs;
  }

  /** The status code's name, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return Code[this.code]
      .replace(/([a-z])([A-Z])/g, "$1_$2")
      .toUpperCase();
  }
}

export class CanceledError extends HonchoError {}
export class UnknownError extends HonchoError {}
export class InvalidArgumentError extends HonchoError {}
export class DeadlineExceededError extends HonchoError {}
export class NotFoundError extends HonchoError {}
export class AlreadyExistsError extends HonchoError {}
export class PermissionDeniedError extends HonchoError {}
export class ResourceExhaustedError extends HonchoError {}
export class FailedPreconditionError extends HonchoError {}
export class AbortedError extends HonchoError {}
export class OutOfRangeError extends HonchoError {}
export class UnimplementedError extends HonchoError {}
export class InternalError extends HonchoError {}
export class UnavailableError extends HonchoError {}
export class DataLossError extends HonchoError {}
export class UnauthenticatedError extends HonchoError {}

const BY_CODE: Partial<Record<Code, typeof HonchoError>> = {
  [Code.Canceled]: CanceledError,
  [Code.Unknown]: UnknownError,
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.DeadlineExceeded]: DeadlineExceededError,
  [Code.NotFound]: NotFoundError,
  [Code.AlreadyExists]: AlreadyExistsError,
  [Code.PermissionDenied]: PermissionDeniedError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.Aborted]: AbortedError,
  [Code.OutOfRange]: OutOfRangeError,
  [Code.Unimplemented]: UnimplementedError,
  [Code.Internal]: InternalError,
  [Code.Unavailable]: UnavailableError,
  [Code.DataLoss]: DataLossError,
  [Code.Unauthenticated]: UnauthenticatedError,
};

/** The typed error for anything a call threw (ConnectError or not). */
export function toHonchoError(error: unknown): HonchoError {
  if (error instanceof HonchoError) {
    return error;
  }
  const err = ConnectError.from(error);
  const [info] = err.findDetails(ErrorInfoSchema);
  const fieldViolations = err
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
  const [retry] = err.findDetails(RetryInfoSchema);
  const retryDelayMs = retry?.retryDelay
    ? Number(retry.retryDelay.seconds) * 1000 + Math.round(retry.retryDelay.nanos / 1e6)
    : undefined;
  const Kind = BY_CODE[err.code] ?? HonchoError;
  return new Kind(err.rawMessage, {
    code: err.code,
    reason: info?.reason,
    domain: info?.domain,
    metadata: info ? { ...info.metadata } : {},
    fieldViolations,
    retryDelayMs,
    cause: error,
  });
}
