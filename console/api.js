// The console's only ways out: the public Web API with the signed-in token, and the live-event
// stream (/console/events, the same bearer token, read with fetch() streaming because
// EventSource cannot send an Authorization header).

export const BASE = '/api/data/v9.2/';
const KEY = 'smsctx.token';

export const token = () => sessionStorage.getItem(KEY);
export const setToken = (value) => sessionStorage.setItem(KEY, value);
export const clearToken = () => sessionStorage.removeItem(KEY);

/** A Web API failure, with Dataverse's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
/** What to do when the token stops being accepted (401). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function failure(response) {
  let code = '';
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || '';
      message = body.error.message || message;
    }
  } catch {
    // Not JSON: the status line says it.
  }
  return new ApiError(response.status, code, message);
}

/**
 * One Web API request. `path` is below /api/data/v9.2/ (or a whole nextLink URL). Answers the
 * JSON body, or null for 204; throws an ApiError carrying the Dataverse error message.
 */
export async function api(path, { method = 'GET', body, headers = {}, annotations = true, pageSize } = {}) {
  const url = path.startsWith('http') || path.startsWith('/') ? path : BASE + path;
  const prefer = [];
  if (annotations) prefer.push('odata.include-annotations="*"');
  if (pageSize) prefer.push(`odata.maxpagesize=${pageSize}`);
  const all = {
    Accept: 'application/json',
    'OData-MaxVersion': '4.0',
    'OData-Version': '4.0',
    Authorization: `Bearer ${token()}`,
    ...headers,
  };
  if (prefer.length) all.Prefer = prefer.join(',');
  if (body !== undefined) all['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, { method, headers: all, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, '', `The server cannot be reached (${e.message}).`);
  }
  if (response.status === 401) {
    const error = await failure(response);
    onUnauthorized(error);
    throw error;
  }
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Every row of a list, following @odata.nextLink (at most `limit` rows). */
export async function all(path, limit = 5000) {
  let page = await api(path, { pageSize: 500 });
  const rows = [...page.value];
  while (page['@odata.nextLink'] && rows.length < limit) {
    page = await api(page['@odata.nextLink'], { pageSize: 500 });
    rows.push(...page.value);
  }
  return rows;
}

/** An OData string literal. */
export const quote = (text) => `'${String(text).replaceAll("'", "''")}'`;

/** The development login's admin token, or why not. */
export async function devLoginOffered() {
  try {
    const response = await fetch('/console/dev-login', { headers: { Accept: 'application/json' } });
    return response.ok && (await response.json()).available === true;
  } catch {
    return false;
  }
}

export async function devLogin() {
  const response = await fetch('/console/dev-login', { method: 'POST', headers: { Accept: 'application/json' } });
  if (!response.ok) throw await failure(response);
  return (await response.json()).token;
}

/**
 * Opens the live-event stream; calls `onEvent(name, data)` per event and `onState(text)` when
 * the connection changes. Reconnects after a failure (each reconnect starts with `ready`, on
 * which the caller refetches). Returns a function that closes it.
 */
export function openEvents(onEvent, onState) {
  let closed = false;
  let controller = null;
  let delay = 1000;
  const run = async () => {
    while (!closed) {
      controller = new AbortController();
      try {
        const response = await fetch('/console/events', {
          headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token()}` },
          signal: controller.signal,
        });
        if (response.status === 401) {
          onUnauthorized(await failure(response));
          return;
        }
        if (!response.ok || !response.body) throw await failure(response);
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let name = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) name = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trim();
            }
            if (block.startsWith(':')) continue;
            if (name === 'ready') onState('live');
            if (name === 'signed-out') {
              onUnauthorized(new ApiError(401, '', 'The session ended: sign in again.'));
              return;
            }
            onEvent(name, data ? JSON.parse(data) : {});
          }
        }
      } catch (e) {
        if (closed) return;
        onState(`reconnecting (${e.message})`);
      }
      if (closed) return;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  };
  run();
  return () => {
    closed = true;
    if (controller) controller.abort();
  };
}
