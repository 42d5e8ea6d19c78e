#!/usr/bin/env python3
"""A throwaway JSON user API for trying the tutorial connector by hand (never for production).

    python3 examples/custom-connector/fake-user-api.py      # serves http://127.0.0.1:5557

One user, jane / password, bearer token "dev-token". It answers the two requests the connector
makes: POST /v1/authenticate and GET /v1/users/<id>.
"""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

TOKEN = "dev-token"
USERS = {
    "jane": {
        "password": "password",
        "user": {
            "id": "1001",
            "name": "Jane Doe",
            "email": "jane@example.com",
            "emailVerified": True,
            "groups": ["admins", "staff"],
        },
    },
}


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.headers.get("authorization") == "Bearer " + TOKEN:
            return True
        self.reply(403, {"error": "invalid_token"})
        return False

    def do_POST(self):
        if self.path != "/v1/authenticate":
            return self.reply(404, {"error": "not_found"})
        if not self.authorized():
            return
        length = int(self.headers.get("content-length") or 0)
        try:
            creds = json.loads(self.rfile.read(length))
        except ValueError:
            return self.reply(400, {"error": "invalid_json"})
        entry = USERS.get(creds.get("username"))
        if entry is None or entry["password"] != creds.get("password"):
            return self.reply(401, {"error": "invalid_credentials"})
        self.reply(200, entry["user"])

    def do_GET(self):
        prefix = "/v1/users/"
        if not self.path.startswith(prefix):
            return self.reply(404, {"error": "not_found"})
        if not self.authorized():
            return
        user_id = unquote(self.path[len(prefix):])
        for entry in USERS.values():
            if entry["user"]["id"] == user_id:
                return self.reply(200, entry["user"])
        self.reply(404, {"error": "not_found"})


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 5557), Handler)
    print("fake user API on http://127.0.0.1:5557 (user jane / password, token dev-token)")
    server.serve_forever()
