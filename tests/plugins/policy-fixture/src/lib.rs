//! Test fixture (never shipped): a policy built with wit-bindgen alone against
//! `wit/policy/0.1.0`, whose `config.mode` picks what it does —
//! `grant-claims` (honest: tags tokens with the grant that minted them and the client),
//! `loop` (never returns), `tamper-login` / `tamper-mint` (patch a reserved claim),
//! `denied-host` (calls a host it was not granted), `panic`.

wit_bindgen::generate!({
    path: "../../../wit/policy/0.1.0",
    world: "plugin",
    // The connector contract's types, which `http` uses, are generated here too.
    generate_all,
});

use exports::portcullis::policy::policy::{
    Allow, GrantType, Guest, Identity, LoginContext, LoginDecision, Metadata, MintContext, PolicyError, TokenPatch,
};
use portcullis::connector::http::{Request, send};

struct Fixture;

fn mode(config: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    value.get("mode").and_then(|m| m.as_str()).unwrap_or("grant-claims").to_string()
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = core::hint::black_box(counter.wrapping_add(1));
    }
}

fn grant_name(g: GrantType) -> &'static str {
    match g {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
        GrantType::ClientCredentials => "client_credentials",
        GrantType::DeviceCode => "device_code",
        GrantType::TokenExchange => "token_exchange",
        GrantType::Password => "password",
    }
}

impl Guest for Fixture {
    fn describe(config: String) -> Result<Metadata, PolicyError> {
        match mode(&config).as_str() {
            "grant-claims" | "loop" | "tamper-login" | "tamper-mint" | "denied-host" | "panic" => {
                Ok(Metadata { check_login: true, mint_token: true })
            }
            other => Err(PolicyError::Config(format!("mode: {other:?} is not a mode of this fixture"))),
        }
    }

    fn check_login(ctx: LoginContext, id: Identity) -> Result<LoginDecision, PolicyError> {
        match mode(&ctx.config).as_str() {
            "loop" => spin(),
            "panic" => panic!("the fixture policy panics on purpose"),
            "tamper-login" => {
                Ok(LoginDecision::Allow(Allow { claims: r#"{"sub":"someone-else"}"#.into(), groups: None }))
            }
            "denied-host" => {
                let req = Request {
                    method: "GET".into(),
                    url: "http://127.0.0.1:9/lookup".into(),
                    headers: vec![],
                    body: None,
                };
                send(&req).map_err(|e| PolicyError::Failed(format!("lookup failed: {e:?}")))?;
                Ok(LoginDecision::Deny("the lookup answered, which it must not".into()))
            }
            _ => {
                let claims = serde_json::json!({ "login_seen_by": ctx.client_id, "login_groups": id.groups });
                Ok(LoginDecision::Allow(Allow { claims: claims.to_string(), groups: None }))
            }
        }
    }

    fn mint_token(ctx: MintContext) -> Result<TokenPatch, PolicyError> {
        match mode(&ctx.config).as_str() {
            "loop" => spin(),
            "panic" => panic!("the fixture policy panics on purpose"),
            "tamper-mint" => Ok(TokenPatch { id_token: "{}".into(), access_token: r#"{"exp":null}"#.into() }),
            _ => {
                let grant = grant_name(ctx.grant_type);
                let user = ctx.identity.map(|i| i.user_id);
                Ok(TokenPatch {
                    id_token: serde_json::json!({ "minted_by": grant }).to_string(),
                    access_token:
                        serde_json::json!({ "minted_by": grant, "minted_for": ctx.client_id, "minted_user": user })
                            .to_string(),
                })
            }
        }
    }
}

export!(Fixture);
