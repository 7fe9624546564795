// The gateway's HTTP/JSON API, as any frontend calls it (docs/api.md): POST /v1/<Service>/<Method>
// with the request message in the protobuf JSON mapping and the session's bearer token.
import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? 2;
    this.violations = (body?.details || []).flatMap((d) => d.fieldViolations || []);
  }
}

// gRPC status codes by name, as error bodies carry them (google.rpc.Status `code`).
export const Code = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  UNAUTHENTICATED: 16,
};

const listeners = new Set();
// Called with the error when a call is refused UNAUTHENTICATED (expired token): back to sign-in.
export function onUnauthenticated(listener) {
  listeners.add(listener);
}

// call("careops.ticketing.v1.TicketingService", "GetTicket", {ticketId}) -> the response JSON.
export async function call(service, method, body = {}, { idempotencyKey } = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(`/v1/${service}/${method}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const error = new ApiError(response.status, json);
    if (error.code === Code.UNAUTHENTICATED) listeners.forEach((listener) => listener(error));
    throw error;
  }
  return json;
}

// A fresh idempotency key per command (a resend of the same click reuses its key).
export function newKey() {
  return crypto.randomUUID();
}

export const Services = {
  ticketing: "careops.ticketing.v1.TicketingService",
  customer: "careops.customer.v1.CustomerProfileService",
  incident: "careops.incident.v1.IncidentService",
  quality: "careops.quality.v1.QualityService",
  gateway: "careops.gateway.v1.GatewayService",
};
