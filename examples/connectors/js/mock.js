// The mock connector in JavaScript: a port of plugins/mock (Dex's mock), the same config keys
// and answers. A fixed identity and no network.
//
// In `callback` mode `login-url` sends the browser straight back to the broker's callback with
// the state, and `handle-callback` returns the configured identity. In `password` mode `login`
// accepts exactly the configured username and password.

import {
  badRequest,
  bytes,
  callbackMetadata,
  configError,
  denied,
  exportConnector,
  identity,
  param,
  passwordMetadata,
  redirect,
  unsupported,
  withQuery,
} from './portcullis.js';

const DEFAULT_PROMPT = 'Username';
const STATE_DATA = 'mock-login';
const REFRESH_DATA = 'mock-refresh-data';

/** Dex's mock user. */
const DEFAULT_IDENTITY = {
  userId: '0-385-28089-0',
  username: 'Kilgore Trout',
  preferredUsername: 'kilgore',
  email: 'kilgore@kilgore.trout',
  emailVerified: true,
  groups: ['authors'],
};

function parseIdentity(fields) {
  if (fields === undefined) return DEFAULT_IDENTITY;
  const parsed = {
    userId: fields.required('userID'),
    username: fields.required('username'),
    preferredUsername: fields.string('preferredUsername'),
    email: fields.string('email'),
    emailVerified: fields.boolean('emailVerified', true),
    groups: fields.strings('groups'),
  };
  fields.finish();
  return parsed;
}

function credentials(config) {
  for (const key of ['username', 'password']) {
    if (config[key] === undefined) throw configError(`mode "password" needs \`${key}\`: the ${key} the mock accepts`);
  }
  return [config.username, config.password];
}

function requireMode(config, mode, call) {
  if (config.mode !== mode) throw unsupported(`${call} is not available in mode "${config.mode}"`);
}

function identityFor(config, scopes, connectorData) {
  const id = config.identity;
  return identity({ ...id, groups: scopes.groups ? [...id.groups] : [], connectorData });
}

/** Compares two strings without an early exit on the first difference. */
function constantTimeEqual(a, b) {
  const x = bytes(a);
  const y = bytes(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

const mock = {
  parse(fields) {
    const config = {
      mode: fields.oneOf('mode', ['callback', 'password'], 'callback'),
      identity: parseIdentity(fields.object('identity')),
      username: fields.string('username'),
      password: fields.string('password'),
      prompt: fields.string('prompt'),
    };
    fields.finish();
    return config;
  },

  describe(config) {
    if (config.mode === 'password') {
      credentials(config);
      return passwordMetadata(config.prompt ?? DEFAULT_PROMPT, { refresh: true });
    }
    return callbackMetadata({ refresh: true });
  },

  loginUrl(config, _scopes, callbackUrl, state) {
    requireMode(config, 'callback', 'login-url');
    return redirect(withQuery(callbackUrl, [['state', state]]), bytes(STATE_DATA));
  },

  handleCallback(config, scopes, req) {
    requireMode(config, 'callback', 'handle-callback');
    // The mock's upstream never fails, it only declines: every error answer is a refusal.
    const error = param(req, 'error');
    if (error !== undefined) throw denied(param(req, 'error_description') ?? error);
    if (!req.query.some(([k]) => k === 'state')) throw badRequest('missing state');
    return identityFor(config, scopes, scopes.offlineAccess ? bytes(REFRESH_DATA) : undefined);
  },

  login(config, scopes, username, password) {
    requireMode(config, 'password', 'login');
    const [wantUser, wantPassword] = credentials(config);
    // Evaluate both comparisons so timing does not tell which one failed.
    const userOk = constantTimeEqual(username, wantUser);
    const passwordOk = constantTimeEqual(password, wantPassword);
    if (!(userOk & passwordOk)) return undefined;
    return identityFor(config, scopes, scopes.offlineAccess ? bytes(REFRESH_DATA) : undefined);
  },

  refresh(config, scopes, id) {
    return identityFor(config, scopes, id.connectorData);
  },
};

export const { connector, tokenExchange } = exportConnector(mock);
