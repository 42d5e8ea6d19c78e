//! The example app's HTML pages: minijinja templates (auto-escaped) and their data.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, context};
use serde::Serialize;

/// What the token page shows after a login or a refresh.
#[derive(Debug, Default, Serialize)]
pub struct TokenPage {
    pub heading: String,
    pub id_token: Option<String>,
    /// The ID token's claims as pretty JSON.
    pub claims: Option<String>,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scopes: String,
    pub refresh_token: Option<String>,
    pub logout_url: Option<String>,
}

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        // Names ending in .html are auto-escaped.
        env.add_template("layout.html", include_str!("../templates/layout.html"))?;
        env.add_template("index.html", include_str!("../templates/index.html"))?;
        env.add_template("token.html", include_str!("../templates/token.html"))?;
        env.add_template("error.html", include_str!("../templates/error.html"))?;
        Ok(Pages { env })
    }

    pub fn index(&self, issuer: &str, client_id: &str, public: bool, scopes: &[&str]) -> Response {
        self.render(StatusCode::OK, "index.html", context! { issuer, client_id, public, scopes })
    }

    pub fn tokens(&self, page: &TokenPage) -> Response {
        self.render(StatusCode::OK, "token.html", page)
    }

    pub fn error(&self, heading: &str, error: &str, description: &str) -> Response {
        self.render(StatusCode::BAD_REQUEST, "error.html", context! { heading, error, description })
    }

    fn render<S: Serialize>(&self, status: StatusCode, name: &str, ctx: S) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("template {name}: {err:#}")).into_response(),
        }
    }
}
