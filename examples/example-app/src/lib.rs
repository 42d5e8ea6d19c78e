//! A small OpenID Connect relying party for trying out Portcullis by hand, like Dex's example-app.
//!
//! It discovers the issuer, sends the browser to log in (authorization code flow with state,
//! nonce and PKCE S256), verifies the returned ID token and shows the tokens, and can redeem
//! a refresh token and log out through the issuer's end_session_endpoint.
//!
//! The binary (`main.rs`) parses [`Cli`] and calls [`run`]; tests build the [`router`] and serve
//! it on a listener of their own.

mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use axum::Router;
use axum::extract::{Query, RawForm, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreTokenResponse};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken, Scope,
    TokenResponse,
};

use crate::pages::{Pages, TokenPage};

/// The scopes the login form offers (and ticks) besides `openid`, which is always sent.
const DEFAULT_SCOPES: &[&str] = &["profile", "email", "groups", "offline_access"];
/// How long to keep retrying discovery while the issuer starts.
const DISCOVERY_PATIENCE: Duration = Duration::from_secs(30);
/// How long a login may take between /login and /callback.
const PENDING_TTL: Duration = Duration::from_secs(600);

#[derive(clap::Parser, Debug, Clone)]
#[command(name = "example-app", about = "An example OpenID Connect relying party for Portcullis")]
pub struct Cli {
    /// URL of the OpenID Connect issuer.
    #[arg(long, default_value = "http://127.0.0.1:5556/dex")]
    pub issuer: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5555")]
    pub listen: SocketAddr,
    /// OAuth2 client ID (default: example-app, or example-app-public with --public).
    #[arg(long)]
    pub client_id: Option<String>,
    /// OAuth2 client secret (ignored with --public).
    #[arg(long, default_value = "ZXhhbXBsZS1hcHAtc2VjcmV0")]
    pub client_secret: String,
    /// Callback URL registered for the client.
    #[arg(long, default_value = "http://127.0.0.1:5555/callback")]
    pub redirect_uri: String,
    /// Where the issuer sends the browser after logging out.
    #[arg(long, default_value = "http://127.0.0.1:5555/")]
    pub post_logout_redirect_uri: String,
    /// Act as a public client: no secret, only PKCE (client ID example-app-public by default).
    #[arg(long)]
    pub public: bool,
}

/// The client type `from_provider_metadata` gives: auth URL set, token and user info URLs maybe.
type OidcClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// What /callback needs to finish a login started by /login.
struct Pending {
    nonce: Nonce,
    pkce_verifier: PkceCodeVerifier,
    started: Instant,
}

struct App {
    client: OidcClient,
    http: reqwest::Client,
    end_session: Option<EndSessionUrl>,
    post_logout_redirect: PostLogoutRedirectUrl,
    issuer: String,
    client_id: String,
    public: bool,
    /// state → the login's nonce and PKCE verifier.
    pending: Mutex<HashMap<String, Pending>>,
    pages: Pages,
}

type Shared = Arc<App>;

/// Runs the app as the binary does: discovers the issuer, listens on `--listen` and serves
/// until Ctrl-C.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let router = router(&cli).await?;
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    println!(
        "example-app: client {}{} of {}, listening on http://{}/",
        client_id(&cli),
        if cli.public { " (public)" } else { "" },
        cli.issuer,
        cli.listen
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The client ID in use: `--client-id`, or the default for the client type.
fn client_id(cli: &Cli) -> String {
    cli.client_id.clone().unwrap_or_else(|| if cli.public { "example-app-public" } else { "example-app" }.to_string())
}

/// The app's routes, after discovering the issuer (retrying while it starts). `cli.listen`
/// is not used: the caller serves the router where it likes.
pub async fn router(cli: &Cli) -> anyhow::Result<Router> {
    let client_id = client_id(cli);
    let secret = (!cli.public).then(|| ClientSecret::new(cli.client_secret.clone()));

    let http = reqwest::Client::builder()
        // Following redirects opens the client up to SSRF; the flows here need none.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;

    let issuer = IssuerUrl::new(cli.issuer.clone()).context("--issuer is not a URL")?;
    let metadata = discover(&issuer, &http).await?;
    let end_session = metadata.additional_metadata().end_session_endpoint.clone();
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), secret)
        .set_redirect_uri(RedirectUrl::new(cli.redirect_uri.clone()).context("--redirect-uri is not a URL")?);

    let app = Arc::new(App {
        client,
        http,
        end_session,
        post_logout_redirect: PostLogoutRedirectUrl::new(cli.post_logout_redirect_uri.clone())
            .context("--post-logout-redirect-uri is not a URL")?,
        issuer: cli.issuer.clone(),
        client_id,
        public: cli.public,
        pending: Mutex::new(HashMap::new()),
        pages: Pages::new()?,
    });

    Ok(Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/callback", get(callback))
        .route("/refresh", post(refresh))
        .with_state(app))
}

/// Fetches the issuer's discovery document, retrying for a while so the app can be started
/// alongside the broker.
async fn discover(issuer: &IssuerUrl, http: &reqwest::Client) -> anyhow::Result<ProviderMetadataWithLogout> {
    let deadline = Instant::now() + DISCOVERY_PATIENCE;
    let mut announced = false;
    loop {
        match ProviderMetadataWithLogout::discover_async(issuer.clone(), http).await {
            Ok(metadata) => {
                if announced {
                    eprintln!("example-app: discovery succeeded");
                }
                return Ok(metadata);
            }
            Err(err) if Instant::now() < deadline => {
                if !announced {
                    eprintln!(
                        "example-app: waiting for the issuer at {} (is the broker starting?): {}",
                        issuer.as_str(),
                        error_chain(&err)
                    );
                    announced = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => {
                return Err(anyhow!(
                    "could not fetch discovery from {} after {} s: {}",
                    issuer.as_str(),
                    DISCOVERY_PATIENCE.as_secs(),
                    error_chain(&err)
                ));
            }
        }
    }
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

async fn index(State(app): State<Shared>) -> Response {
    app.pages.index(&app.issuer, &app.client_id, app.public, DEFAULT_SCOPES)
}

async fn login(State(app): State<Shared>, RawForm(body): RawForm) -> Response {
    let mut scopes: Vec<String> = Vec::new();
    let mut connector_id = String::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "scope" | "extra_scopes" => {
                for s in value.split_whitespace() {
                    // openidconnect always adds `openid` itself.
                    if s != "openid" && !scopes.iter().any(|have| have == s) {
                        scopes.push(s.to_string());
                    }
                }
            }
            "connector_id" => connector_id = value.trim().to_string(),
            _ => {}
        }
    }

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = app
        .client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new(scope));
    }
    if !connector_id.is_empty() {
        request = request.add_extra_param("connector_id", connector_id);
    }
    let (url, state, nonce) = request.url();

    let mut pending = app.pending.lock().unwrap_or_else(PoisonError::into_inner);
    pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
    pending.insert(state.secret().clone(), Pending { nonce, pkce_verifier: verifier, started: Instant::now() });
    Redirect::to(url.as_str()).into_response()
}

async fn callback(State(app): State<Shared>, Query(query): Query<HashMap<String, String>>) -> Response {
    if let Some(error) = query.get("error") {
        if let Some(state) = query.get("state") {
            app.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(state);
        }
        let description = query.get("error_description").map(String::as_str).unwrap_or("");
        return app.pages.error("The issuer returned an error", error, description);
    }
    let (Some(code), Some(state)) = (query.get("code"), query.get("state")) else {
        return app.pages.error("Bad callback", "invalid_request", "The callback has no code or no state.");
    };
    let Some(pending) = app.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(state) else {
        return app.pages.error(
            "Bad callback",
            "invalid_state",
            "The state is unknown or was already used: start the login again.",
        );
    };
    if pending.started.elapsed() >= PENDING_TTL {
        return app.pages.error("Bad callback", "invalid_state", "The login took too long: start again.");
    }

    let response = match exchange_code(&app, code, pending.pkce_verifier).await {
        Ok(response) => response,
        Err(err) => return app.pages.error("Code exchange failed", "token_error", &format!("{err:#}")),
    };
    match token_page(&app, "Logged in", &response, Some(&pending.nonce)) {
        Ok(page) => app.pages.tokens(&page),
        Err(err) => app.pages.error("ID token verification failed", "invalid_id_token", &format!("{err:#}")),
    }
}

async fn refresh(State(app): State<Shared>, RawForm(body): RawForm) -> Response {
    let refresh_token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if refresh_token.is_empty() {
        return app.pages.error("Refresh failed", "invalid_request", "No refresh token was posted.");
    }
    let refresh_token = RefreshToken::new(refresh_token);
    let response = match app.client.exchange_refresh_token(&refresh_token) {
        Ok(request) => request.request_async(&app.http).await.map_err(|e| anyhow!(error_chain(&e))),
        Err(err) => Err(anyhow!(err)),
    };
    let response = match response {
        Ok(response) => response,
        Err(err) => return app.pages.error("Refresh failed", "token_error", &format!("{err:#}")),
    };
    match token_page(&app, "Tokens refreshed", &response, None) {
        Ok(page) => app.pages.tokens(&page),
        Err(err) => app.pages.error("ID token verification failed", "invalid_id_token", &format!("{err:#}")),
    }
}

async fn exchange_code(app: &App, code: &str, verifier: PkceCodeVerifier) -> anyhow::Result<CoreTokenResponse> {
    let request = app.client.exchange_code(AuthorizationCode::new(code.to_string()))?;
    request.set_pkce_verifier(verifier).request_async(&app.http).await.map_err(|e| anyhow!(error_chain(&e)))
}

/// Verifies the response's ID token (against `nonce` if given: a refreshed ID token may carry
/// any) and gathers what the token page shows.
fn token_page(
    app: &App,
    heading: &str,
    response: &CoreTokenResponse,
    nonce: Option<&Nonce>,
) -> anyhow::Result<TokenPage> {
    let mut page = TokenPage {
        heading: heading.to_string(),
        access_token: response.access_token().secret().clone(),
        token_type: format!("{:?}", response.token_type()).to_lowercase(),
        expires_in: response.expires_in().map(|d| d.as_secs()),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        ..TokenPage::default()
    };

    let logout = app.end_session.clone().map(LogoutRequest::from);
    let Some(id_token) = response.id_token() else {
        // Without an ID token to hint with, name the client instead.
        page.logout_url = logout.map(|l| {
            l.set_client_id(ClientId::new(app.client_id.clone()))
                .set_post_logout_redirect_uri(app.post_logout_redirect.clone())
                .http_get_url()
                .to_string()
        });
        return Ok(page);
    };

    verify_id_token(app, id_token, response, nonce)?;
    page.id_token = Some(id_token.to_string());
    page.claims = Some(decode_claims(&id_token.to_string())?);
    page.logout_url = logout.map(|l| {
        l.set_id_token_hint(id_token)
            .set_post_logout_redirect_uri(app.post_logout_redirect.clone())
            .http_get_url()
            .to_string()
    });
    Ok(page)
}

fn verify_id_token(
    app: &App,
    id_token: &CoreIdToken,
    response: &CoreTokenResponse,
    nonce: Option<&Nonce>,
) -> anyhow::Result<()> {
    let verifier = app.client.id_token_verifier();
    let claims = match nonce {
        Some(nonce) => id_token.claims(&verifier, nonce)?,
        None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?,
    };
    // The access token must be the one the ID token was issued with.
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            response.access_token(),
            id_token.signing_alg()?,
            id_token.signing_key(&verifier)?,
        )?;
        if actual != *expected {
            return Err(anyhow!("the access token does not match the ID token's at_hash"));
        }
    }
    Ok(())
}

/// The (already verified) JWT's payload as pretty JSON, with every claim the issuer put in it
/// (openidconnect's typed claims would drop unknown ones such as `groups`).
fn decode_claims(jwt: &str) -> anyhow::Result<String> {
    let payload = jwt.split('.').nth(1).ok_or_else(|| anyhow!("the ID token is not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("decoding the ID token payload")?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).context("parsing the ID token payload")?;
    Ok(serde_json::to_string_pretty(&value)?)
}
