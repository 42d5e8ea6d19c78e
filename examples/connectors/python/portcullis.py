"""A small helper over the portcullis:connector@0.3.0 bindings, in the spirit of the Rust SDK
(plugins/sdk): parse the config once with the keys your connector knows, raise errors that the
broker maps to what the user sees, build identities and redirects, and send HTTP through the
host (`allowedHosts`, limits and the response cap are enforced there, never here).

Usage: subclass `Connector`, implement the calls your connector offers (the others answer
`unsupported`), and export it from your app module with `export(MyConnector)`.
"""

import json
from typing import Any, Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world.imports import http as wit_http
from wit_world.imports import log as wit_log
from wit_world.imports import types as t

Scopes = t.Scopes
CallbackRequest = t.CallbackRequest


# --- Errors ------------------------------------------------------------------------------------

def config_error(message: str) -> Err:
    """The connector's config is wrong; name the key and what to write."""
    return Err(t.ConnectorError_Config(message))


def upstream_error(message: str) -> Err:
    """The upstream failed or answered something unexpected (a 502 page)."""
    return Err(t.ConnectorError_Upstream(message))


def denied(message: str) -> Err:
    """The user may not log in here (a 403 page)."""
    return Err(t.ConnectorError_Denied(message))


def bad_request(message: str) -> Err:
    """The callback is malformed or not for this login (a 400 page)."""
    return Err(t.ConnectorError_BadRequest(message))


def unsupported(message: str) -> Err:
    """This connector does not implement the call."""
    return Err(t.ConnectorError_Unsupported(message))


# --- Config ------------------------------------------------------------------------------------

class Fields:
    """A JSON object read key by key; `finish()` refuses the keys nobody read (deny unknown
    fields, as the Rust SDK's serde configs do)."""

    def __init__(self, value: Any, where: str = "config"):
        if not isinstance(value, dict):
            raise config_error(f"invalid connector config: {where} must be an object")
        self._value: Dict[str, Any] = value
        self._where = where
        self._read: set = set()

    def _get(self, key: str, kind: type, kind_name: str, default: Any) -> Any:
        self._read.add(key)
        if key not in self._value or self._value[key] is None:
            return default
        value = self._value[key]
        if kind is bool and not isinstance(value, bool) or kind is not bool and (
            not isinstance(value, kind) or isinstance(value, bool)
        ):
            raise config_error(f"invalid connector config: {self._name(key)} must be {kind_name}")
        return value

    def _name(self, key: str) -> str:
        return key if self._where == "config" else f"{self._where}.{key}"

    def string(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self._get(key, str, "a string", default)

    def boolean(self, key: str, default: bool = False) -> bool:
        return self._get(key, bool, "true or false", default)

    def strings(self, key: str) -> List[str]:
        values = self._get(key, list, "a list of strings", [])
        if not all(isinstance(v, str) for v in values):
            raise config_error(f"invalid connector config: {self._name(key)} must be a list of strings")
        return values

    def required(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise config_error(f"invalid connector config: missing field `{self._name(key)}`")
        return value

    def one_of(self, key: str, choices: List[str], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            listed = ", ".join(f"`{c}`" for c in choices)
            raise config_error(
                f"invalid connector config: {self._name(key)}: unknown variant `{value}`, expected one of {listed}"
            )
        return value

    def object(self, key: str) -> Optional["Fields"]:
        self._read.add(key)
        if self._value.get(key) is None:
            return None
        return Fields(self._value[key], self._name(key))

    def finish(self) -> None:
        unknown = sorted(set(self._value) - self._read)
        if unknown:
            raise config_error(f"invalid connector config: unknown field `{self._name(unknown[0])}`")


def parse_config(text: str) -> Fields:
    """The config block the broker passed, as `Fields`; a config error if it is not JSON."""
    try:
        return Fields(json.loads(text))
    except ValueError as e:
        raise config_error(f"invalid connector config: {e}")


# --- Results -----------------------------------------------------------------------------------

def identity(
    user_id: str,
    username: str,
    preferred_username: Optional[str] = None,
    email: Optional[str] = None,
    email_verified: bool = False,
    groups: Optional[List[str]] = None,
    connector_data: Optional[bytes] = None,
) -> t.Identity:
    return t.Identity(user_id, username, preferred_username, email, email_verified and email is not None,
                      groups or [], connector_data)


def callback_metadata(refresh: bool = False) -> t.Metadata:
    return t.Metadata(t.ConnectorKind.CALLBACK, None, refresh, False)


def password_metadata(prompt: str, refresh: bool = False) -> t.Metadata:
    return t.Metadata(t.ConnectorKind.PASSWORD, prompt, refresh, False)


def redirect(url: str, state_data: Optional[bytes] = None) -> t.LoginRedirect:
    return t.LoginRedirect(url, state_data, None)


# --- URLs and callbacks ------------------------------------------------------------------------

_UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def encode(text: str) -> str:
    """Percent-encodes all but the RFC 3986 unreserved characters (the Rust SDK's `url::encode`)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def with_query(base: str, pairs: List[Tuple[str, str]]) -> str:
    """Appends `pairs` to `base`'s query, keeping a `#fragment` last (the SDK's `url::with_query`)."""
    if not pairs:
        return base
    head, hash_sign, fragment = base.partition("#")
    sep = "?" if "?" not in head else ("" if head.endswith(("?", "&")) else "&")
    query = "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)
    return f"{head}{sep}{query}{hash_sign}{fragment}"


def param(req: CallbackRequest, name: str) -> Optional[str]:
    """The first query (then form) parameter called `name`."""
    for key, value in list(req.query) + list(req.form):
        if key == name:
            return value
    return None


# --- HTTP through the host ---------------------------------------------------------------------

class Response:
    def __init__(self, raw: wit_http.Response):
        self.status = raw.status
        self.headers = raw.headers
        self.body = raw.body

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise upstream_error(f"upstream answered HTTP {self.status} with unexpected JSON: {e}")


_HOST_ERRORS = {
    "HostError_Denied": "host call denied",
    "HostError_Timeout": "host call timed out",
    "HostError_TooLarge": "host call response too large",
    "HostError_LimitExceeded": "host call limit exceeded",
    "HostError_Invalid": "invalid host call",
    "HostError_Failed": "host call failed",
}


def send(method: str, url: str, headers: Optional[List[Tuple[str, str]]] = None,
         body: Optional[bytes] = None) -> Response:
    """Sends a request through the host's `http` import; a refused or failed call is an upstream
    error naming the method, the URL without its query, and the host's reason."""
    try:
        return Response(wit_http.send(wit_http.Request(method, url, headers or [], body)))
    except Err as e:
        what = _HOST_ERRORS.get(type(e.value).__name__, "host call failed")
        raise upstream_error(f"{method} {url.split('?')[0]}: {what}: {e.value.value}")


def get_json(url: str, headers: Optional[List[Tuple[str, str]]] = None) -> Any:
    response = send("GET", url, [("accept", "application/json")] + (headers or []))
    if not 200 <= response.status < 300:
        raise upstream_error(f"upstream answered HTTP {response.status}")
    return response.json()


def log(message: str, level: wit_log.Level = wit_log.Level.INFO) -> None:
    """Writes to the broker's log, tagged with the connector id. Never log secrets."""
    wit_log.log(level, message)


# --- The exports -------------------------------------------------------------------------------

class Connector:
    """Override the calls your connector offers; `parse(fields)` turns the config into your own
    object (call `fields.finish()` at its end). The others answer `unsupported`."""

    def parse(self, fields: Fields) -> Any:
        fields.finish()
        return None

    def describe(self, config: Any) -> t.Metadata:
        raise unsupported("describe is not implemented")

    def login_url(self, config: Any, scopes: Scopes, callback_url: str, state: str) -> t.LoginRedirect:
        raise unsupported("login-url is not implemented by this connector")

    def handle_callback(self, config: Any, scopes: Scopes, req: CallbackRequest) -> t.Identity:
        raise unsupported("handle-callback is not implemented by this connector")

    def login(self, config: Any, scopes: Scopes, username: str, password: str) -> Optional[t.Identity]:
        raise unsupported("login is not implemented by this connector")

    def refresh(self, config: Any, scopes: Scopes, identity: t.Identity) -> t.Identity:
        raise unsupported("refresh is not implemented by this connector")

    def token_identity(self, config: Any, scopes: Scopes, token_type: str, token: str) -> t.Identity:
        raise unsupported("token exchange is not implemented by this connector")


def export(impl: Connector):
    """The two classes componentize-py looks for in the app module: `Connector` and
    `TokenExchange`, each parsing the config and calling `impl`."""

    def parsed(text: str) -> Any:
        return impl.parse(parse_config(text))

    class ConnectorExport:
        def describe(self, config: str) -> t.Metadata:
            return impl.describe(parsed(config))

        def login_url(self, config: str, s: Scopes, callback_url: str, state: str) -> t.LoginRedirect:
            return impl.login_url(parsed(config), s, callback_url, state)

        def handle_callback(self, config: str, s: Scopes, req: CallbackRequest) -> t.Identity:
            return impl.handle_callback(parsed(config), s, req)

        def login(self, config: str, s: Scopes, username: str, password: str) -> Optional[t.Identity]:
            return impl.login(parsed(config), s, username, password)

        def refresh(self, config: str, s: Scopes, id: t.Identity) -> t.Identity:
            return impl.refresh(parsed(config), s, id)

    class TokenExchangeExport:
        def token_identity(self, config: str, s: Scopes, subject_token_type: str, subject_token: str) -> t.Identity:
            return impl.token_identity(parsed(config), s, subject_token_type, subject_token)

    return ConnectorExport, TokenExchangeExport
