"""The mock connector in Python: a port of plugins/mock (Dex's mock), the same config keys and
answers. A fixed identity and no network.

In `callback` mode `login-url` sends the browser straight back to the broker's callback with
the state, and `handle-callback` returns the configured identity. In `password` mode `login`
accepts exactly the configured username and password.
"""

import hmac
from dataclasses import dataclass, field
from typing import List, Optional

import portcullis
from portcullis import Fields, Scopes

DEFAULT_PROMPT = "Username"
STATE_DATA = b"mock-login"
REFRESH_DATA = b"mock-refresh-data"


@dataclass
class MockIdentity:
    """The identity every login returns: Dex's mock user unless configured."""
    user_id: str = "0-385-28089-0"
    username: str = "Kilgore Trout"
    preferred_username: Optional[str] = "kilgore"
    email: Optional[str] = "kilgore@kilgore.trout"
    email_verified: bool = True
    groups: List[str] = field(default_factory=lambda: ["authors"])


@dataclass
class Config:
    mode: str
    identity: MockIdentity
    username: Optional[str]
    password: Optional[str]
    prompt: Optional[str]

    def credentials(self):
        for key, value in (("username", self.username), ("password", self.password)):
            if value is None:
                raise portcullis.config_error(f'mode "password" needs `{key}`: the {key} the mock accepts')
        return self.username, self.password

    def require_mode(self, mode: str, call: str) -> None:
        if self.mode != mode:
            raise portcullis.unsupported(f'{call} is not available in mode "{self.mode}"')

    def identity_for(self, scopes: Scopes, connector_data: Optional[bytes]):
        i = self.identity
        return portcullis.identity(
            i.user_id, i.username, i.preferred_username, i.email, i.email_verified,
            list(i.groups) if scopes.groups else [], connector_data,
        )


def parse_identity(fields: Optional[Fields]) -> MockIdentity:
    if fields is None:
        return MockIdentity()
    parsed = MockIdentity(
        user_id=fields.required("userID"),
        username=fields.required("username"),
        preferred_username=fields.string("preferredUsername"),
        email=fields.string("email"),
        email_verified=fields.boolean("emailVerified", True),
        groups=fields.strings("groups"),
    )
    fields.finish()
    return parsed


class Mock(portcullis.Connector):
    def parse(self, fields: Fields) -> Config:
        config = Config(
            mode=fields.one_of("mode", ["callback", "password"], "callback"),
            identity=parse_identity(fields.object("identity")),
            username=fields.string("username"),
            password=fields.string("password"),
            prompt=fields.string("prompt"),
        )
        fields.finish()
        return config

    def describe(self, config: Config):
        if config.mode == "password":
            config.credentials()
            return portcullis.password_metadata(config.prompt or DEFAULT_PROMPT, refresh=True)
        return portcullis.callback_metadata(refresh=True)

    def login_url(self, config: Config, scopes: Scopes, callback_url: str, state: str):
        config.require_mode("callback", "login-url")
        return portcullis.redirect(portcullis.with_query(callback_url, [("state", state)]), STATE_DATA)

    def handle_callback(self, config: Config, scopes: Scopes, req):
        config.require_mode("callback", "handle-callback")
        # The mock's upstream never fails, it only declines: every error answer is a refusal.
        error = portcullis.param(req, "error")
        if error is not None:
            raise portcullis.denied(portcullis.param(req, "error_description") or error)
        if not any(key == "state" for key, _ in req.query):
            raise portcullis.bad_request("missing state")
        return config.identity_for(scopes, REFRESH_DATA if scopes.offline_access else None)

    def login(self, config: Config, scopes: Scopes, username: str, password: str):
        config.require_mode("password", "login")
        want_user, want_password = config.credentials()
        # Evaluate both comparisons so timing does not tell which one failed.
        user_ok = hmac.compare_digest(username.encode(), want_user.encode())
        password_ok = hmac.compare_digest(password.encode(), want_password.encode())
        if not (user_ok & password_ok):
            return None
        return config.identity_for(scopes, REFRESH_DATA if scopes.offline_access else None)

    def refresh(self, config: Config, scopes: Scopes, identity):
        return config.identity_for(scopes, identity.connector_data)


Connector, TokenExchange = portcullis.export(Mock())
