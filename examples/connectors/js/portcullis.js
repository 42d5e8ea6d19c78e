// A small helper over the portcullis:connector@0.3.0 bindings, in the spirit of the Rust SDK
// (plugins/sdk): parse the config once with the keys your connector knows, throw errors the
// broker maps to what the user sees, build identities and redirects, and send HTTP through the
// host (`allowedHosts`, limits and the response cap are enforced there, never here).
//
// Usage: write an object with the calls your connector offers and a `parse(fields)` that
// turns the config into your own value, then `export const { connector, tokenExchange } =
// exportConnector(impl)` from your app module.

import { send as hostSend } from 'portcullis:connector/http@0.3.0';
import { log as hostLog } from 'portcullis:connector/log@0.3.0';

// --- Errors -----------------------------------------------------------------------------------

/** A connector error: thrown from an export, it becomes the call's `connector-error`. */
export class ConnectorError extends Error {
  constructor(tag, message) {
    super(message);
    this.tag = tag;
  }
}

/** The connector's config is wrong; name the key and what to write. */
export const configError = (message) => new ConnectorError('config', message);
/** The upstream failed or answered something unexpected (a 502 page). */
export const upstreamError = (message) => new ConnectorError('upstream', message);
/** The user may not log in here (a 403 page). */
export const denied = (message) => new ConnectorError('denied', message);
/** The callback is malformed or not for this login (a 400 page). */
export const badRequest = (message) => new ConnectorError('bad-request', message);
/** This connector does not implement the call. */
export const unsupported = (message) => new ConnectorError('unsupported', message);

// --- Config -----------------------------------------------------------------------------------

/** A JSON object read key by key; `finish()` refuses the keys nobody read (deny unknown fields,
 * as the Rust SDK's serde configs do). */
export class Fields {
  constructor(value, where = 'config') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw configError(`invalid connector config: ${where} must be an object`);
    }
    this.value = value;
    this.where = where;
    this.read = new Set();
  }

  name(key) {
    return this.where === 'config' ? key : `${this.where}.${key}`;
  }

  get(key, type, typeName, fallback) {
    this.read.add(key);
    const value = this.value[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== type) {
      throw configError(`invalid connector config: ${this.name(key)} must be ${typeName}`);
    }
    return value;
  }

  string(key, fallback = undefined) {
    return this.get(key, 'string', 'a string', fallback);
  }

  boolean(key, fallback = false) {
    return this.get(key, 'boolean', 'true or false', fallback);
  }

  strings(key) {
    this.read.add(key);
    const value = this.value[key] ?? [];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw configError(`invalid connector config: ${this.name(key)} must be a list of strings`);
    }
    return value;
  }

  required(key) {
    const value = this.string(key);
    if (value === undefined) throw configError(`invalid connector config: missing field \`${this.name(key)}\``);
    return value;
  }

  oneOf(key, choices, fallback) {
    const value = this.string(key, fallback);
    if (!choices.includes(value)) {
      const listed = choices.map((c) => `\`${c}\``).join(', ');
      throw configError(
        `invalid connector config: ${this.name(key)}: unknown variant \`${value}\`, expected one of ${listed}`,
      );
    }
    return value;
  }

  object(key) {
    this.read.add(key);
    const value = this.value[key];
    return value === undefined || value === null ? undefined : new Fields(value, this.name(key));
  }

  finish() {
    const unknown = Object.keys(this.value).filter((k) => !this.read.has(k)).sort();
    if (unknown.length > 0) throw configError(`invalid connector config: unknown field \`${this.name(unknown[0])}\``);
  }
}

/** The config block the broker passed, as `Fields`; a config error if it is not JSON. */
export function parseConfig(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw configError(`invalid connector config: ${e.message}`);
  }
  return new Fields(value);
}

// --- Results ----------------------------------------------------------------------------------

export function identity({ userId, username, preferredUsername, email, emailVerified = false, groups = [], connectorData }) {
  return {
    userId,
    username,
    preferredUsername: preferredUsername ?? undefined,
    email: email ?? undefined,
    emailVerified: Boolean(emailVerified && email),
    groups,
    connectorData: connectorData ?? undefined,
  };
}

export const callbackMetadata = ({ refresh = false } = {}) => ({
  kind: 'callback',
  passwordPrompt: undefined,
  supportsRefresh: refresh,
  supportsTokenIdentity: false,
});

export const passwordMetadata = (prompt, { refresh = false } = {}) => ({
  kind: 'password',
  passwordPrompt: prompt,
  supportsRefresh: refresh,
  supportsTokenIdentity: false,
});

export const redirect = (url, stateData = undefined) => ({ url, stateData, postForm: undefined });

/** The UTF-8 bytes of `text`, for `stateData` and `connectorData` (no TextEncoder needed:
 * QuickJS has none). */
export function bytes(text) {
  const out = [];
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return new Uint8Array(out);
}

/** `bytes` decoded as UTF-8 (invalid sequences become U+FFFD). */
export function text(data) {
  let out = '';
  for (let i = 0; i < data.length; ) {
    const b = data[i];
    const need = b < 0x80 ? 0 : b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
    if (need < 0 || i + need >= data.length) {
      out += '\ufffd';
      i += 1;
      continue;
    }
    let c = need === 0 ? b : b & (0x3f >> need);
    for (let k = 1; k <= need; k++) c = (c << 6) | (data[i + k] & 0x3f);
    out += String.fromCodePoint(c);
    i += need + 1;
  }
  return out;
}

// --- URLs and callbacks -----------------------------------------------------------------------

/** Percent-encodes all but the RFC 3986 unreserved characters (the Rust SDK's `url::encode`). */
export function encode(text) {
  let out = '';
  for (const b of bytes(text)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Appends `pairs` to `base`'s query, keeping a `#fragment` last (the SDK's `url::with_query`). */
export function withQuery(base, pairs) {
  if (pairs.length === 0) return base;
  const hash = base.indexOf('#');
  const head = hash < 0 ? base : base.slice(0, hash);
  const fragment = hash < 0 ? '' : base.slice(hash);
  const sep = !head.includes('?') ? '?' : head.endsWith('?') || head.endsWith('&') ? '' : '&';
  return head + sep + pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&') + fragment;
}

/** The first query (then form) parameter called `name`. */
export function param(req, name) {
  const found = [...req.query, ...req.form].find(([k]) => k === name);
  return found ? found[1] : undefined;
}

// --- HTTP through the host --------------------------------------------------------------------

const HOST_ERRORS = {
  denied: 'host call denied',
  timeout: 'host call timed out',
  'too-large': 'host call response too large',
  'limit-exceeded': 'host call limit exceeded',
  invalid: 'invalid host call',
  failed: 'host call failed',
};

/** Sends a request through the host's `http` import; a refused or failed call is an upstream
 * error naming the method, the URL without its query, and the host's reason. (`fetch` also
 * works, through wasi:http under the same allowlist and limits.) */
export function send(method, url, headers = [], body = undefined) {
  try {
    const response = hostSend({ method, url, headers, body });
    return {
      status: response.status,
      headers: response.headers,
      body: response.body,
      header: (name) => response.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1],
      json: () => JSON.parse(text(response.body)),
    };
  } catch (e) {
    const err = e?.payload ?? e;
    const what = HOST_ERRORS[err?.tag] ?? 'host call failed';
    throw upstreamError(`${method} ${url.split('?')[0]}: ${what}: ${err?.val ?? err}`);
  }
}

export function getJson(url, headers = []) {
  const response = send('GET', url, [['accept', 'application/json'], ...headers]);
  if (response.status < 200 || response.status >= 300) throw upstreamError(`upstream answered HTTP ${response.status}`);
  try {
    return response.json();
  } catch (e) {
    throw upstreamError(`upstream answered HTTP ${response.status} with unexpected JSON: ${e.message}`);
  }
}

/** Writes to the broker's log, tagged with the connector id. Never log secrets. */
export const log = (message, level = 'info') => hostLog(level, message);

// --- The exports ------------------------------------------------------------------------------

/** Thrown `ConnectorError`s become the call's error; anything else thrown is a bug, and traps. */
function guarded(call) {
  try {
    return call();
  } catch (e) {
    if (e instanceof ConnectorError) throw { tag: e.tag, val: e.message };
    throw e;
  }
}

const notImplemented = (call) => () => {
  throw unsupported(`${call} is not implemented by this connector`);
};

/** The `connector` and `tokenExchange` exports for `impl`: each call parses the config with
 * `impl.parse(fields)` and calls `impl`; calls `impl` lacks answer `unsupported`. */
export function exportConnector(impl) {
  const parse = impl.parse ?? ((fields) => fields.finish());
  const call = (name, label) => impl[name]?.bind(impl) ?? notImplemented(label);
  const parsed = (config) => parse.call(impl, parseConfig(config));
  return {
    connector: {
      describe: (config) => guarded(() => call('describe', 'describe')(parsed(config))),
      loginUrl: (config, s, callbackUrl, state) =>
        guarded(() => call('loginUrl', 'login-url')(parsed(config), s, callbackUrl, state)),
      handleCallback: (config, s, req) => guarded(() => call('handleCallback', 'handle-callback')(parsed(config), s, req)),
      login: (config, s, username, password) =>
        guarded(() => call('login', 'login')(parsed(config), s, username, password)),
      refresh: (config, s, id) => guarded(() => call('refresh', 'refresh')(parsed(config), s, id)),
    },
    tokenExchange: {
      tokenIdentity: (config, s, type, token) =>
        guarded(() => call('tokenIdentity', 'token exchange')(parsed(config), s, type, token)),
    },
  };
}
