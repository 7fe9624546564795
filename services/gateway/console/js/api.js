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

// Only a refusal of the session's own token signs it out: a request sent before a sign-out (with
// no token or the last user's) may come back refused after the next user has signed in.
function refused(token, error) {
  if (token === session.token()) listeners.forEach((listener) => listener(error));
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
    if (error.code === Code.UNAUTHENTICATED) refused(token, error);
    throw error;
  }
  return json;
}

// How long a view waits before reconnecting a dropped stream: 0.5 s, 1 s, 2 s, then every 5 s.
export const RECONNECT_MS = [500, 1000, 2000, 5000];

// A server stream through the gateway's NDJSON edge (docs/api.md): POST with the bearer
// header, read line by line from the ReadableStream; onOpen() once the call is accepted,
// onMessage(result) per `result` line (heartbeat lines skipped) until the stream ends. Throws
// ApiError when refused or on an `error` line (then the caller decides whether to reconnect).
export async function watch(service, method, body, { signal, onOpen = () => {}, onMessage }) {
  const headers = { "Content-Type": "application/json" };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`/v1/${service}/${method}`, { method: "POST", headers, body: JSON.stringify(body), signal });
  if (!response.ok) {
    const text = await response.text();
    const error = new ApiError(response.status, text ? JSON.parse(text) : {});
    if (error.code === Code.UNAUTHENTICATED) refused(token, error);
    throw error;
  }
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const message = JSON.parse(line);
      if (message.error) throw new ApiError(500, message.error);
      if (message.result) onMessage(message.result);
    }
  }
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
