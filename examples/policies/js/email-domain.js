// An example policy in JavaScript (portcullis:policy@0.1.0, wit/policy/0.1.0): a rule an operator
// would write. Only users whose email is in one of the configured domains may log in, and each
// gets a `department` claim looked up in the company directory over HTTP (a host the policy's
// `allowedHosts` must grant; the broker enforces it, not this code).
//
// Config:
//   domains:      ["example.com", ...]          required: the email domains allowed in
//   directoryURL: "https://dir.example.com/api"  optional: GET <directoryURL>?email=<email>
//                                                  answers {"department": "..."}
//
// Built with the JavaScript kit's tools (examples/connectors/js): see README.md.

import { encode, send, text } from '../../connectors/js/portcullis.js';

/** A policy error: thrown from an export, it becomes the call's `policy-error`. */
const configError = (message) => ({ tag: 'config', val: message });
const failed = (message) => ({ tag: 'failed', val: message });

function parse(configText) {
  let config;
  try {
    config = JSON.parse(configText);
  } catch (e) {
    throw configError(`the config is not JSON: ${e.message}`);
  }
  for (const key of Object.keys(config)) {
    if (key !== 'domains' && key !== 'directoryURL') {
      throw configError(`unknown key ${JSON.stringify(key)}; this policy takes domains and directoryURL`);
    }
  }
  const { domains, directoryURL } = config;
  if (!Array.isArray(domains) || domains.length === 0 || !domains.every((d) => typeof d === 'string' && d !== '')) {
    throw configError('domains: give the email domains allowed to log in, e.g. domains: [example.com]');
  }
  if (directoryURL !== undefined && (typeof directoryURL !== 'string' || !/^https?:\/\//.test(directoryURL))) {
    throw configError('directoryURL: give an http(s) URL, e.g. https://directory.example.com/api/people');
  }
  return { domains: domains.map((d) => d.toLowerCase()), directoryURL };
}

/** The user's department from the directory, or undefined when it does not know them. */
function department(directoryURL, email) {
  const url = `${directoryURL}${directoryURL.includes('?') ? '&' : '?'}email=${encode(email)}`;
  let response;
  try {
    response = send('GET', url, [['accept', 'application/json']]);
  } catch (e) {
    // The host refused or failed the call (a host not in allowedHosts, a timeout): the policy
    // fails, and the entry's onError decides (deny by default).
    throw failed(e.message ?? String(e));
  }
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw failed(`the directory answered HTTP ${response.status}`);
  const found = JSON.parse(text(response.body));
  return typeof found.department === 'string' ? found.department : undefined;
}

export const policy = {
  describe(configText) {
    parse(configText);
    return { checkLogin: true, mintToken: false };
  },

  checkLogin(ctx, id) {
    const config = parse(ctx.config);
    const email = (id.email ?? '').toLowerCase();
    const domain = email.includes('@') ? email.slice(email.lastIndexOf('@') + 1) : '';
    if (!config.domains.includes(domain)) {
      return { tag: 'deny', val: `only accounts of ${config.domains.join(', ')} may log in here` };
    }
    const claims = {};
    if (config.directoryURL !== undefined) {
      const dept = department(config.directoryURL, email);
      if (dept !== undefined) claims.department = dept;
    }
    return { tag: 'allow', val: { claims: JSON.stringify(claims), groups: undefined } };
  },

  mintToken() {
    return { idToken: '{}', accessToken: '{}' };
  },
};
