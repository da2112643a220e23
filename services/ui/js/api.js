// The modern API (/api/v2), with its errors turned into exceptions that carry the server's message.
import { errorText, t } from "./i18n.js";

/** How long a request may wait for the whole answer before the page says the server does not answer. */
export const TIMEOUT_MS = 8000;

export class ApiError extends Error {
  /**
   * `reason` is set when the api did not answer: "network" (refused or cut, status 0), "timeout"
   * (nothing within the time allowed, status 0) or "gateway" (a proxy's 502, 503 or 504).
   * `code` and `params` are the api's own (services/api/citizenwatt_api/errors.py), for the page
   * to word the error in its language.
   */
  constructor(status, message, { reason = null, code = null, params = null } = {}) {
    super(errorText(code, params, message)); // worded by code in the page's language (i18n.js)
    this.english = message; // the server's own text, for scripts and for telling refusals apart
    this.status = status;
    this.reason = reason;
    this.code = code;
    this.params = params;
  }

  /** True when the server did not answer (as opposed to answering with an error of its own). */
  get unreachable() {
    return this.reason !== null;
  }
}

// A proxy's answers for an api that is not there.
const GATEWAY_ERRORS = new Set([502, 503, 504]);

/**
 * Whether the server answers, as last seen by any request or by the live stream: "up" and "down"
 * events, sent on every change only, for the frame to say so once and to recover by itself.
 */
export const connection = new EventTarget();
let reachable = true;

/** Record whether the server answered; a "down" event carries the error that found it out. */
export function reportReachable(isReachable, error = null) {
  if (isReachable === reachable) return;
  reachable = isReachable;
  connection.dispatchEvent(new CustomEvent(isReachable ? "up" : "down", { detail: error }));
}

/** The error of a request that got no answer, worded for the banner. */
export function unreachableError(reason) {
  return new ApiError(0, t(reason === "timeout" ? "common.timeout" : "common.offline"), { reason });
}

export async function api(path, { method = "GET", body, params, timeoutMs = TIMEOUT_MS } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params ?? {})) url.searchParams.set(name, String(value));
  // A frozen server accepts the connection and never answers: without a deadline the request, and
  // the "Loading…" waiting for it, would last for ever. The deadline covers the body too.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal: deadline.signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  let payload = null;
  try {
    response = await fetch(url, init);
    if (response.status !== 204) payload = await response.json().catch((error) => {
      if (deadline.signal.aborted) throw error;
      return null; // an answer that is not JSON (a proxy's error page): its status says enough
    });
  } catch {
    const error = unreachableError(deadline.signal.aborted ? "timeout" : "network");
    reportReachable(false, error);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  if (GATEWAY_ERRORS.has(response.status)) {
    // A proxy in front of the api answering for it: the api itself is not there.
    const error = new ApiError(response.status, t("common.offline"), { reason: "gateway" });
    reportReachable(false, error);
    throw error;
  }
  reportReachable(true);
  if (!response.ok) {
    // The api says what went wrong in `error`; FastAPI's own refusals use `detail` (text or a list).
    const detail = Array.isArray(payload?.detail) ? payload.detail.map((d) => d.msg ?? String(d)).join("; ") : payload?.detail;
    throw new ApiError(response.status, payload?.error ?? detail ?? payload?.message ?? `HTTP ${response.status}`, {
      code: payload?.code ?? null,
      params: payload?.params ?? null,
    });
  }
  return payload;
}
