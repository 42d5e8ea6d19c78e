// Fixture: a connector whose world also imports `test:extra-import/not-provided`, which the
// broker does not provide; loading it must be refused naming that import.
import { ping } from 'test:extra-import/not-provided';

const unsupported = () => {
  throw { tag: 'unsupported', val: 'no' };
};

export const connector = {
  describe: () => ({ kind: 'callback', passwordPrompt: ping(), supportsRefresh: false, supportsTokenIdentity: false }),
  loginUrl: unsupported,
  handleCallback: unsupported,
  login: unsupported,
  refresh: unsupported,
};

export const tokenExchange = { tokenIdentity: unsupported };
