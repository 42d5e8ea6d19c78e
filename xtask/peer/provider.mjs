// node-oidc-provider configured like Portcullis's example config, for `cargo xtask bench --peer`:
// one confidential client (example-app), one password user (admin@example.com / password,
// scrypt-hashed at start), RS256, a login page and a consent page, the memory adapter.
//
// Environment: PEER_PORT (required), PEER_SCRYPT_N (scrypt cost, default 1024).
// Prints one JSON line on stdout once listening: the port, the scrypt cost and the medians of
// one scrypt check and one RS256 signature measured in this process (the peer's floor).

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
if (!port) {
  console.error('PEER_PORT is not set: give the port to listen on');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const scryptN = Number(process.env.PEER_SCRYPT_N || 1024);
const scryptParams = { N: scryptN, r: 8, p: 1, maxmem: 256 * scryptN * 8 * 2 };

const USER = {
  sub: '08a8684b-db88-4b73-90a9-3cd1661f5466',
  email: 'admin@example.com',
  email_verified: true,
  name: 'admin',
  preferred_username: 'admin',
};
const salt = crypto.randomBytes(16);
const hash = crypto.scryptSync('password', salt, 32, scryptParams);

function checkPassword(login, password) {
  return new Promise((resolve) => {
    // The same work for an unknown user: the hash is always computed.
    crypto.scrypt(String(password), salt, 32, scryptParams, (err, derived) => {
      resolve(!err && login === USER.email && crypto.timingSafeEqual(derived, hash));
    });
  });
}

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'example-app',
    client_secret: 'ZXhhbXBsZS1hcHAtc2VjcmV0',
    redirect_uris: ['http://127.0.0.1:5555/callback'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  claims: { email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  // Claims in the ID token, as Dex and Portcullis put them there.
  conformIdTokenClaims: false,
  // Rotate on every refresh, as Dex and Portcullis do.
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
  },
  async findAccount(_ctx, sub) {
    if (sub !== USER.sub) return undefined;
    return { accountId: sub, claims: async () => ({ ...USER }) };
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// The interaction pages: GET shows the login or the consent form, POST .../login checks the
// password, POST .../confirm records the grant.
async function interaction(req, res) {
  const [, , uid, action] = req.url.split('?')[0].split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Error', 'wrong interaction'));
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      return send(res, 200, page('Log in', `<form method="post" action="/interaction/${uid}/login">
<input name="login" type="text" autocomplete="username" required>
<input name="password" type="password" required>
<button type="submit">Log in</button></form>`));
    }
    return send(res, 200, page('Grant access', `<p>${params.client_id} wants: ${params.scope}</p>
<form method="post" action="/interaction/${uid}/confirm">
<button type="submit" name="approval" value="approve">Grant access</button></form>`));
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    if (!(await checkPassword(form.get('login'), form.get('password')))) {
      return send(res, 401, page('Log in', 'Invalid username or password'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: USER.sub } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    let grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }
  return send(res, 400, page('Error', 'unexpected request'));
}

function median(f, n) {
  const times = [];
  for (let i = 0; i < n; i += 1) {
    const t = process.hrtime.bigint();
    f();
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

const claims = Buffer.from(JSON.stringify({
  iss: issuer, sub: USER.sub, aud: 'example-app', exp: 4000000000, iat: 1700000000,
  email: USER.email, email_verified: true, name: USER.name,
}));
const signUs = median(() => crypto.sign('sha256', claims, privateKey), 201);
const scryptUs = median(() => crypto.scryptSync('password', salt, 32, scryptParams), 51);

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      console.error('interaction', err);
      if (!res.headersSent) send(res, 500, page('Error', 'server error'));
    });
  } else {
    callback(req, res);
  }
});
server.keepAliveTimeout = 10000;
server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({
    ready: true, port, issuer, scrypt_n: scryptN, scrypt_us: scryptUs, sign_rs256_us: signUs,
    node: process.version, oidc_provider: '9.13.3',
  }));
});
