// The modern API (/api/v2), with its errors turned into exceptions that carry the server's message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body, params } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params ?? {})) url.searchParams.set(name, String(value));
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, "network");
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    // The api says what went wrong in `error`; FastAPI's own refusals use `detail` (text or a list).
    const detail = Array.isArray(payload?.detail) ? payload.detail.map((d) => d.msg ?? String(d)).join("; ") : payload?.detail;
    throw new ApiError(response.status, payload?.error ?? detail ?? payload?.message ?? `HTTP ${response.status}`);
  }
  return payload;
}
