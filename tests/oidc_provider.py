"""A small OpenID Connect provider on loopback for the tests, built on authlib's authorization server and
Flask (werkzeug's threaded server), like sandbox/controller.py is moto's.

Why not the `oidc-provider-mock` package: 0.3.4 keeps no sign-in session at the provider (every
authorization shows its form), so it cannot answer `prompt=none` silently, ignores `max_age` and
`prompt=login`, and sends no `auth_time`. These tests need all four: a session renewed silently, a
person removed at the provider, a fresh sign-in forced by `max_age=0`/`prompt=login`, and an old
`auth_time` refused. This provider does what OpenID Connect Core says for those, and no more:

- accounts with a password and their claims (`email`, `groups`, ...), changed by the tests;
- a sign-in session per browser (a cookie), with the time of its last sign-in (`auth_time`);
- `prompt=none` answered from that session or with `error=login_required`; `prompt=login` and a
  `max_age` older than the session show the sign-in form again;
- RP-initiated logout at `end_session_endpoint` (ends the browser's session there, back to a registered
  `post_logout_redirect_uri`); like Google, it can publish none (`end_session_supported = False`);
- like Google, it can be told to ignore `prompt=login`/`max_age` (`reauth_supported = False`) or to
  send no `auth_time` (`sends_auth_time = False`).
"""

import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import flask
import werkzeug.serving
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

# authlib refuses plain http unless told; the provider only ever listens on loopback.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

CLIENT_ID = "onramp-tests"
CLIENT_SECRET = "onramp-tests-client-secret"
SESSION_COOKIE = "op_session"

LOGIN_FORM = """<!doctype html><html lang="en"><head><title>Test provider: sign in</title></head><body>
<h1>Test provider: sign in</h1>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<label for="email">Email</label> <input id="email" name="email" value="{{ hint }}">
<label for="password">Password</label> <input id="password" name="password" type="password">
<button type="submit">Sign in</button>
</form></body></html>"""


@dataclass
class Account:
    email: str
    password: str
    claims: dict
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Client:
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope

    def check_redirect_uri(self, redirect_uri):
        return True  # the tests' servers listen on ports chosen at run time

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    auth_time: int
    sub: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class _QuietHandler(werkzeug.serving.WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Provider:
    """The provider: `start()` it, point Onramp's OIDC_ISSUER at `url`, add accounts, `stop()` it."""

    def __init__(self):
        self.key = RSAKey.generate_key(2048, parameters={"kid": "tests", "use": "sig", "alg": "RS256"})
        self.lock = threading.Lock()
        self.reset()
        self.app = self._app()
        self.server = None
        self.url = ""

    def reset(self) -> None:
        with self.lock:
            self.accounts: dict[str, Account] = {}
            self.sessions: dict[str, dict] = {}  # cookie value -> {"sub", "auth_time"}
            self.codes: dict[str, Code] = {}
            self.tokens: dict[str, str] = {}  # access token -> sub
            self.nonces: set[str] = set()
            self.requests: list[dict] = []  # every authorization request's parameters (its GET), in order
            self.reauth_supported = True
            self.sends_auth_time = True
            # RP-initiated logout: Okta publishes an end_session_endpoint, Google none.
            self.end_session_supported = True
            self.post_logout_redirect_uris: set[str] = set()  # registered at the provider, as Okta asks
            self.logouts: list[dict] = []  # every end-session request's parameters, in order

    # --- what the tests change ---
    def account_set(self, email: str, *, password: str, omit: tuple[str, ...] = (), **claims) -> Account:
        """Add or change an account; its claims are replaced (a group removed is gone from `groups`).
        `omit` names claims the provider does not send at all (e.g. `email_verified`)."""
        with self.lock:
            account = self.accounts.get(email)
            if account is None:
                account = self.accounts[email] = Account(email=email, password=password, claims={})
            account.password = password
            claims = {"email": email, "email_verified": True, **claims}
            account.claims = {name: value for name, value in claims.items() if name not in omit}
            return account

    def account_rename(self, email: str, new_email: str) -> Account:
        """The person's email changes at the provider; they stay the same subject (`sub`)."""
        with self.lock:
            account = self.accounts.pop(email)
            account.email = new_email
            account.claims = {**account.claims, "email": new_email}
            self.accounts[new_email] = account
            return account

    def account_remove(self, email: str) -> None:
        """The person leaves: the account, its sign-in sessions and its tokens (userinfo refuses them) are gone."""
        with self.lock:
            account = self.accounts.pop(email)
            self.sessions = {sid: s for sid, s in self.sessions.items() if s["sub"] != account.sub}

    def sessions_end(self, email: str) -> None:
        """The person's sign-in sessions at the provider end (they time out); the account stays."""
        with self.lock:
            sub = self.accounts[email].sub
            self.sessions = {sid: s for sid, s in self.sessions.items() if s["sub"] != sub}

    def sessions_age(self, seconds: int) -> None:
        """Every sign-in session at the provider signed in `seconds` earlier than it did."""
        with self.lock:
            for session in self.sessions.values():
                session["auth_time"] -= seconds

    # --- the server ---
    def start(self) -> "Provider":
        self.server = werkzeug.serving.make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _account_by_sub(self, sub: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.sub == sub), None)

    def _app(self) -> flask.Flask:
        app = flask.Flask(__name__)
        server = AuthorizationServer(app, query_client=self._query_client, save_token=self._save_token)
        server.register_grant(self._code_grant(), [CodeChallenge(required=True), self._openid_code()])

        app.add_url_rule("/.well-known/openid-configuration", view_func=self._discovery)
        app.add_url_rule("/jwks", view_func=lambda: flask.jsonify({"keys": [self.key.as_dict(private=False)]}))
        app.add_url_rule(
            "/authorize", view_func=lambda: self._authorize(server), methods=["GET", "POST"], endpoint="authorize"
        )
        app.add_url_rule("/token", view_func=server.create_token_response, methods=["POST"], endpoint="token")
        app.add_url_rule("/userinfo", view_func=self._userinfo)
        app.add_url_rule("/logout", view_func=self._end_session)
        return app

    def _query_client(self, client_id):
        return Client() if client_id == CLIENT_ID else None

    def _save_token(self, token, request):
        with self.lock:
            self.tokens[token["access_token"]] = request.user.sub

    def _discovery(self):
        end_session = {"end_session_endpoint": f"{self.url}/logout"} if self.end_session_supported else {}
        return flask.jsonify(
            {
                **end_session,
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "groups"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    def _end_session(self):
        """OpenID Connect RP-Initiated Logout 1.0: the ID token names the session's person (signed by us, for
        the client), the browser's session at the provider ends, and the browser goes back only to a
        registered post_logout_redirect_uri."""
        if not self.end_session_supported:
            return flask.abort(404)
        args = flask.request.args.to_dict()
        self.logouts.append(args)
        try:
            token = jwt.decode(args.get("id_token_hint", ""), self.key)
        except JoseError:
            return "id_token_hint is not an ID token of this provider", 400
        if CLIENT_ID not in token.claims.get("aud", []) or args.get("client_id", CLIENT_ID) != CLIENT_ID:
            return "id_token_hint is not for this client", 400
        with self.lock:
            sid = flask.request.cookies.get(SESSION_COOKIE, "")
            session = self.sessions.get(sid)
            if session is not None and session["sub"] == token.claims["sub"]:
                del self.sessions[sid]
        target = args.get("post_logout_redirect_uri")
        if target is None:
            return "Signed out."
        if target not in self.post_logout_redirect_uris:
            return "post_logout_redirect_uri is not registered", 400
        response = flask.redirect(target)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def _userinfo(self):
        token = flask.request.headers.get("Authorization", "").removeprefix("Bearer ")
        account = self._account_by_sub(self.tokens.get(token, ""))
        if account is None:
            return flask.jsonify({"error": "invalid_token"}), 401
        return flask.jsonify({"sub": account.sub, **account.claims})

    def _signed_in(self) -> tuple[Account | None, dict | None]:
        session = self.sessions.get(flask.request.cookies.get(SESSION_COOKIE, ""))
        account = self._account_by_sub(session["sub"]) if session else None
        return (account, session) if account else (None, None)

    def _must_sign_in_again(self, session: dict) -> bool:
        """`prompt=login`, or a `max_age` the session is older than (OpenID Connect Core 3.1.2.1)."""
        if not self.reauth_supported:
            return False
        args = flask.request.args
        max_age = args.get("max_age")
        too_old = max_age is not None and time.time() - session["auth_time"] > int(max_age)
        return too_old or "login" in args.get("prompt", "").split()

    def _authorize(self, server: AuthorizationServer):
        new_session = None
        if flask.request.method == "GET":
            self.requests.append(flask.request.args.to_dict())
        if flask.request.method == "POST":
            account = self.accounts.get(flask.request.form.get("email", ""))
            if account is None or not secrets.compare_digest(account.password, flask.request.form.get("password", "")):
                return self._login_form("Wrong email or password.")
            new_session = {"sub": account.sub, "auth_time": int(time.time())}
        else:
            account, session = self._signed_in()
            if account is not None and self._must_sign_in_again(session):
                account = None
        try:
            grant = server.get_consent_grant(end_user=account)
        except OAuth2Error as error:  # prompt=none without a session: login_required, back to the client
            return server.handle_error_response(FlaskOAuth2Request(flask.request), error)
        if account is None:
            return self._login_form("")
        response = server.create_authorization_response(grant_user=account, grant=grant)
        if new_session is not None:
            sid = secrets.token_urlsafe(16)
            self.sessions[sid] = new_session
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax")
        return response

    def _login_form(self, error: str):
        action = f"/authorize?{quote(flask.request.query_string.decode(), safe='=&%+')}"
        hint = flask.request.args.get("login_hint", "")
        return flask.render_template_string(LOGIN_FORM, error=error, action=action, hint=hint)

    def _code_grant(self):
        provider = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, request):
                data = request.payload.data
                provider.nonces.add(data.get("nonce"))
                provider.codes[code] = Code(
                    code=code,
                    client_id=request.client.get_client_id(),
                    redirect_uri=request.payload.redirect_uri,
                    scope=request.payload.scope,
                    nonce=data.get("nonce"),
                    auth_time=provider._session_for(request.user)["auth_time"],
                    sub=request.user.sub,
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code, client):
                found = provider.codes.get(code)
                return found if found and found.client_id == client.get_client_id() else None

            def delete_authorization_code(self, authorization_code):
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return provider._account_by_sub(authorization_code.sub)

        return CodeGrant

    def _session_for(self, account: Account) -> dict:
        """The sign-in session behind this authorization: the one the form just made, or the cookie's."""
        _, session = self._signed_in()
        if flask.request.method == "POST" or session is None or session["sub"] != account.sub:
            return {"sub": account.sub, "auth_time": int(time.time())}
        return session

    def _openid_code(self):
        provider = self

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce, request):
                return nonce in provider.nonces  # a nonce is spent when a code is issued with it

            def resolve_client_private_key(self, client):
                return provider.key

            def get_client_algorithm(self, client):
                return "RS256"

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": provider.key.kid}

            def get_client_claims(self, client):
                return {"iss": provider.url, "aud": [client.get_client_id()], "exp": int(time.time()) + 3600}

            def get_compatible_claims(self, request):
                claims = super().get_compatible_claims(request)
                if not provider.sends_auth_time:
                    claims.pop("auth_time", None)
                return claims

            def get_authorization_code_claims(self, authorization_code):
                claims = super().get_authorization_code_claims(authorization_code)
                if not provider.sends_auth_time:
                    claims.pop("auth_time", None)
                return claims

            def generate_user_info(self, user, scope):
                return {"sub": user.sub, **user.claims}

        return IdToken(require_nonce=True)
