//! The SSO session: its cookie, its absolute and idle lifetimes, the clients it logged the user
//! into (and so may share with), its public id `sid`, and its end — which tells every client
//! with a `backchannelLogoutURI` (OIDC Back-Channel Logout 1.0).
//!
//! Dex's rules where a `sessions` block is given: a login joins the browser's session when it
//! is the same user through the same connector, else starts a new one; a client reuses a
//! session it logged into itself, or one a client it is shared with (`ssoSharedWith`) logged
//! into directly — never transitively.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue};

use super::flow::Proof;
use super::{AppState, cookies, is_https, issuer, prefix, random_token, token_key};
use crate::clock::secs;
use crate::connectors::Identity;
use crate::generation::Live;
use crate::ids::{ClientId, TokenKey};
use crate::oidc::claims::LogoutTokenClaims;
use crate::storage::{Session, SessionClient};

/// How long one logout token delivery may take; a wedged client cannot hold the logout.
const BACKCHANNEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The browser's live session, as read from its cookie.
pub struct Current {
    pub key: TokenKey,
    pub session: Session,
    pub version: i64,
}

/// The session's public id, as ID tokens and logout tokens carry it: derived from the stored
/// key, so it names the session without letting anyone present it as the cookie.
pub fn sid(key: &TokenKey) -> String {
    TokenKey::of(&format!("sid:{}", key.as_str())).as_str()[..32].to_string()
}

/// The session cookie's name (`sessions.cookieName`).
pub fn cookie_name(live: &Live) -> &str {
    &live.config.sessions.cookie_name
}

/// The session the request's cookie names, if it is live (absolute and idle lifetimes).
pub async fn current(broker: &AppState, live: &Live, headers: &HeaderMap, now: i64) -> Option<Current> {
    let key = token_key(&cookies::get(headers, cookie_name(live))?);
    let (session, version) = broker.store.session_versioned(&key, now).await.ok().flatten()?;
    if session.ends_at() <= now {
        let _ = broker.store.delete_session(&key).await;
        return None;
    }
    Some(Current { key, session, version })
}

/// Whether `session` may log the user into `client`: a client it logged into itself, or one a
/// directly logged-in client shares it with (`ssoSharedWith`, else `sessions.ssoSharedWithDefault`).
/// A session stored before sessions recorded their clients is shared as the default says.
pub fn usable_for(live: &Live, session: &Session, client: &ClientId) -> bool {
    let default = live.config.sessions.share_by_default;
    if session.clients.is_empty() {
        return default;
    }
    session.clients.contains_key(client)
        || session.clients.iter().any(|(source, state)| {
            !state.via_sso
                && live.config.clients.get(source.as_str()).is_some_and(|c| c.shares_session_with(client, default))
        })
}

/// Notes a use of the session by `client` (through SSO unless it logged in there itself):
/// the idle lifetime starts again. Best effort: a lost race only loses this touch.
pub async fn touch(broker: &AppState, live: &Live, current: &Current, client: &ClientId, now: i64) {
    let mut session = current.session.clone();
    session.clients.entry(client.clone()).or_insert(SessionClient { via_sso: true });
    if let Some(idle) = live.config.sessions.idle {
        session.idle_expires_at = Some(now + secs(idle));
    }
    if let Err(e) = broker.store.update_session(&current.key, &session, current.version, now).await {
        tracing::debug!("cannot note the session's use: {e}");
    }
}

/// A connector proved `identity` for `client`: the browser's session when it is the same user
/// through the same connector, else a new one (the old one ends). Returns the session's key
/// and the cookie to set; without storage the login goes on without a session.
pub async fn record_login(
    broker: &AppState,
    live: &Live,
    headers: &HeaderMap,
    client: &ClientId,
    proof: &Proof<'_>,
    now: i64,
) -> (Option<TokenKey>, Option<HeaderValue>) {
    let connector_id = proof.connector_id;
    let sessions = &live.config.sessions;
    let idle = sessions.idle.map(|d| now + secs(d));
    let identity = Identity { connector_data: None, policy: None, ..proof.identity.clone() };
    let max_age = proof.remember.then(|| secs(sessions.absolute));
    if let Some(current) = current(broker, live, headers, now).await {
        let same = current.session.connector_id == connector_id && current.session.identity.user_id == identity.user_id;
        if same {
            let mut session = current.session.clone();
            session.identity = identity.clone();
            session.auth_time = now;
            session.idle_expires_at = idle;
            session.clients.insert(client.clone(), SessionClient { via_sso: false });
            if let Ok(true) = broker.store.update_session(&current.key, &session, current.version, now).await {
                // The cookie keeps its value; its lifetime follows this login's choice.
                let value = cookies::get(headers, cookie_name(live)).unwrap_or_default();
                let cookie = headers_cookie(live, &value, max_age.map(|_| session.expires_at - now));
                return (Some(current.key), cookie);
            }
        } else {
            // Another user or connector: the old session is over (its clients are told).
            end(broker, live, &current.key, Some(current.session), now).await;
        }
    }
    let secret = random_token();
    let key = token_key(&secret);
    let session = Session {
        connector_id: connector_id.into(),
        identity,
        auth_time: now,
        expires_at: now + secs(sessions.absolute),
        idle_expires_at: idle,
        clients: [(client.clone(), SessionClient { via_sso: false })].into(),
    };
    match broker.store.create_session(&key, &session, now).await {
        Ok(()) => (Some(key), headers_cookie(live, &secret, max_age)),
        Err(e) => {
            tracing::warn!("cannot store the SSO session (login continues without it): {e}");
            (None, None)
        }
    }
}

/// The session cookie: persistent for `max_age` seconds, or for the browser's session when
/// "remember me" was not ticked.
fn headers_cookie(live: &Live, value: &str, max_age: Option<i64>) -> Option<HeaderValue> {
    match max_age {
        Some(age) => cookies::set(cookie_name(live), value, &prefix(live), age, is_https(live)),
        None => cookies::set_for_browser_session(cookie_name(live), value, &prefix(live), is_https(live)),
    }
}

/// The `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(live: &Live) -> Option<HeaderValue> {
    cookies::clear(cookie_name(live), &prefix(live), is_https(live))
}

/// Ends the session: what it produced is revoked (refresh tokens of clients that wrote
/// `refreshTokenLifetime: standalone` excepted, see `token.rs`), the record goes, and every client
/// it logged into that registered a `backchannelLogoutURI` gets a logout token.
pub async fn end(broker: &AppState, live: &Live, key: &TokenKey, session: Option<Session>, now: i64) {
    let session = match session {
        Some(s) => Some(s),
        None => broker.store.session(key, now).await.ok().flatten(),
    };
    if let Err(e) = broker.store.revoke_session_grants(key, now).await {
        tracing::warn!("cannot revoke the session's grants: {e}");
    }
    if let Err(e) = broker.store.delete_session(key).await {
        tracing::warn!("cannot delete the session: {e}");
    }
    if let Some(session) = session {
        notify(broker, live, key, &session, now);
    }
}

fn backchannel_client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // No redirects: the token must reach the URI the client registered, nowhere else.
            let built = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(BACKCHANNEL_TIMEOUT)
                .build();
            built.map_err(|e| tracing::error!("no HTTP client for back-channel logout: {e}")).ok()
        })
        .as_ref()
}

/// Posts a logout token to each of the session's clients with a `backchannelLogoutURI`, off the
/// request: the user's logout never waits for (or fails with) a client. Failures are logged.
fn notify(broker: &AppState, live: &Live, key: &TokenKey, session: &Session, now: i64) {
    let sid = sid(key);
    let subject = crate::oidc::sub::encode(&session.identity.user_id, &session.connector_id);
    let issuer = issuer(live);
    for client_id in session.clients.keys() {
        let Some(client) = live.config.clients.get(client_id.as_str()) else { continue };
        let Some(uri) = client.backchannel_logout_uri.clone() else { continue };
        let claims = LogoutTokenClaims::new(&issuer, client_id.as_str(), subject.clone(), &sid, random_token(), now);
        let token = match broker.keys.sign(&claims, "logout+jwt") {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(client = %client_id, "cannot sign a logout token: {e}");
                continue;
            }
        };
        let Some(http) = backchannel_client() else { return };
        let client_id = client_id.clone();
        tokio::spawn(async move {
            let sent = http
                .post(uri.clone())
                .header(reqwest::header::CACHE_CONTROL, "no-store")
                .form(&[("logout_token", token.as_str())])
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(client = %client_id, "back-channel logout delivered")
                }
                Ok(r) => {
                    tracing::warn!(client = %client_id, %uri, status = r.status().as_u16(), "back-channel logout refused")
                }
                Err(e) => tracing::warn!(client = %client_id, %uri, "back-channel logout failed: {e}"),
            }
        });
    }
}
