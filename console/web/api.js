// Talking to the console's API: JSON reads, and changes that carry the token in a header (never a cookie). The token
// is kept in this tab's sessionStorage only.
const TOKEN_KEY = 'sightline-console-token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (t) => (t ? sessionStorage.setItem(TOKEN_KEY, t.trim()) : sessionStorage.removeItem(TOKEN_KEY)),
};

/** An error answer, with the server's code and message (console: {error, message}; persons API: {detail}). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? body?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error ?? null;
    this.body = body;
  }
}

async function answer(res) {
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, typeof body === 'object' ? body : { message: body });
  return body;
}

export const getJson = (path) => fetch(path, { cache: 'no-store' }).then(answer);

/** A change: method, path, body (an object is sent as JSON, a string as YAML, FormData as multipart). */
export function change(method, path, body) {
  const headers = {};
  const t = token.get();
  if (t) headers.authorization = `Bearer ${t}`;
  let payload = body;
  if (typeof body === 'string') headers['content-type'] = 'application/yaml';
  else if (body && !(body instanceof FormData)) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  return fetch(path, { method, headers, body: payload }).then(answer);
}

export const fmt = {
  num: (v, digits = 1) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits)),
  time: (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—'),
  dateTime: (ms) => (ms ? new Date(ms).toLocaleString() : '—'),
};
