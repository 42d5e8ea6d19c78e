//! `group-gate`, the policy shipped with the broker (contract `wit/policy/0.1.0`): deny users in
//! none of `requireGroups`, filter the groups each client sees (`groupsFilter`), and add claims —
//! static, templated from the identity (`addClaims`), or for members of a group
//! (`claimsByGroup`). The rules are in `rules.rs`; this file is the contract's glue.

wit_bindgen::generate!({
    path: "../../wit/policy/0.1.0",
    world: "plugin",
    // The connector contract's types, which `http` uses, are generated here too.
    generate_all,
});

mod rules;
mod template;

use exports::portcullis::policy::policy::{
    Allow, Guest, Identity, LoginContext, LoginDecision, Metadata, MintContext, PolicyError, TokenPatch,
};

struct GroupGate;

fn parse(config: &str) -> Result<rules::Rules, PolicyError> {
    rules::Rules::parse(config).map_err(PolicyError::Config)
}

impl Guest for GroupGate {
    fn describe(config: String) -> Result<Metadata, PolicyError> {
        parse(&config)?;
        Ok(Metadata { check_login: true, mint_token: false })
    }

    fn check_login(ctx: LoginContext, id: Identity) -> Result<LoginDecision, PolicyError> {
        let rules = parse(&ctx.config)?;
        let user = rules::User {
            client_id: &ctx.client_id,
            connector_id: &ctx.connector_id,
            user_id: &id.user_id,
            username: &id.username,
            preferred_username: id.preferred_username.as_deref(),
            email: id.email.as_deref(),
            groups: &id.groups,
        };
        Ok(match rules.decide(&user) {
            rules::Decision::Deny(reason) => LoginDecision::Deny(reason),
            rules::Decision::Allow { claims, groups } => {
                LoginDecision::Allow(Allow { claims: serde_json::Value::Object(claims).to_string(), groups })
            }
        })
    }

    fn mint_token(_ctx: MintContext) -> Result<TokenPatch, PolicyError> {
        // describe says mint-token is not implemented, so the broker never calls it.
        Ok(TokenPatch { id_token: "{}".into(), access_token: "{}".into() })
    }
}

export!(GroupGate);
