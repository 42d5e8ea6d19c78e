//! What GitHub says about a user, and the decisions made from it: which email to trust, whether
//! the user may log in (`orgs`), and which groups they get. No I/O here.

use portcullis_connector_sdk::ConnectorError;
use serde::Deserialize;

use crate::config::{Config, TeamNameField};

/// `GET /user`, the fields the connector uses.
#[derive(Deserialize)]
pub struct User {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
pub struct Email {
    pub email: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub verified: bool,
}

/// An organisation as `/user/orgs` and a team's `organization` give it.
#[derive(Deserialize)]
pub struct OrgRef {
    pub login: String,
}

/// One entry of `GET /user/teams`.
#[derive(Deserialize)]
pub struct Team {
    pub name: String,
    pub slug: String,
    pub organization: OrgRef,
}

/// The user's organisations and teams.
pub struct Membership {
    pub orgs: Vec<OrgRef>,
    pub teams: Vec<Team>,
}

/// The email to report: one in `preferredEmailDomain` if there is one, else the primary one.
/// Only verified addresses count, except on GitHub Enterprise, which has no verification.
pub fn pick_email(config: &Config, emails: &[Email]) -> Option<String> {
    let usable = || emails.iter().filter(|e| e.verified || config.enterprise());
    let preferred = usable().find(|e| e.email.rsplit_once('@').is_some_and(|(_, d)| config.preferred_domain(d)));
    preferred.or_else(|| usable().find(|e| e.primary)).map(|e| e.email.clone())
}

/// The names a team goes by in groups, per `teamNameField`.
fn team_names(field: TeamNameField, team: &Team) -> Vec<&str> {
    match field {
        TeamNameField::Name => vec![team.name.as_str()],
        TeamNameField::Slug => vec![team.slug.as_str()],
        TeamNameField::Both if team.name == team.slug => vec![team.name.as_str()],
        TeamNameField::Both => vec![team.name.as_str(), team.slug.as_str()],
    }
}

fn push_unique(groups: &mut Vec<String>, group: String) {
    if !groups.contains(&group) {
        groups.push(group);
    }
}

/// `org` and `org:team` for `org` and the given teams of it.
fn org_groups<'a>(field: TeamNameField, groups: &mut Vec<String>, org: &str, teams: impl Iterator<Item = &'a Team>) {
    push_unique(groups, org.to_string());
    for team in teams {
        for name in team_names(field, team) {
            push_unique(groups, format!("{org}:{name}"));
        }
    }
}

/// Every org of the user and every team in it (`loadAllGroups`).
fn all_groups(config: &Config, m: &Membership) -> Vec<String> {
    let mut orgs: Vec<&str> = m.orgs.iter().map(|o| o.login.as_str()).collect();
    for team in &m.teams {
        if !orgs.contains(&team.organization.login.as_str()) {
            orgs.push(&team.organization.login);
        }
    }
    let mut groups = Vec::new();
    for org in orgs {
        let teams = m.teams.iter().filter(|t| t.organization.login == org);
        org_groups(config.team_name_field, &mut groups, org, teams);
    }
    groups
}

/// The user's groups, or `Denied` when `orgs` is set and the user is in none of its orgs or teams.
pub fn groups(config: &Config, m: &Membership, login: &str) -> Result<Vec<String>, ConnectorError> {
    if let (true, Some(org)) = (config.orgs.is_empty(), config.legacy_org()) {
        // Dex's legacy `org`: the user's teams there, by bare name; nobody is turned away.
        let mut groups = Vec::new();
        for team in m.teams.iter().filter(|t| t.organization.login == org) {
            for name in team_names(config.team_name_field, team) {
                push_unique(&mut groups, name.to_string());
            }
        }
        return Ok(groups);
    }
    if config.orgs.is_empty() {
        return Ok(if config.load_all_groups { all_groups(config, m) } else { Vec::new() });
    }
    let mut groups = Vec::new();
    let mut allowed = false;
    for org in &config.orgs {
        let in_org = |o: &str| o.eq_ignore_ascii_case(&org.name);
        let teams: Vec<&Team> = m.teams.iter().filter(|t| in_org(&t.organization.login)).collect();
        if !m.orgs.iter().any(|o| in_org(&o.login)) && teams.is_empty() {
            continue;
        }
        if org.teams.is_empty() {
            allowed = true;
            org_groups(config.team_name_field, &mut groups, &org.name, teams.into_iter());
            continue;
        }
        let wanted =
            |t: &&Team| org.teams.iter().any(|w| w.eq_ignore_ascii_case(&t.name) || w.eq_ignore_ascii_case(&t.slug));
        let matched: Vec<&Team> = teams.into_iter().filter(wanted).collect();
        if !matched.is_empty() {
            allowed = true;
            org_groups(config.team_name_field, &mut groups, &org.name, matched.into_iter());
        }
    }
    if !allowed {
        let required: Vec<String> =
            config
                .orgs
                .iter()
                .map(|o| {
                    if o.teams.is_empty() {
                        o.name.clone()
                    } else {
                        format!("{} (teams {})", o.name, o.teams.join(", "))
                    }
                })
                .collect();
        return Err(ConnectorError::Denied(format!(
            "GitHub user {login} is not a member of the required organizations or teams: {}",
            required.join("; ")
        )));
    }
    Ok(if config.load_all_groups { all_groups(config, m) } else { groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        serde_json::from_str(&format!(r#"{{"clientID": "i", "clientSecret": "s"{extra}}}"#)).unwrap()
    }

    fn team(org: &str, name: &str, slug: &str) -> Team {
        Team { name: name.into(), slug: slug.into(), organization: OrgRef { login: org.into() } }
    }

    fn membership() -> Membership {
        Membership {
            orgs: vec![OrgRef { login: "acme".into() }, OrgRef { login: "other".into() }],
            teams: vec![
                team("acme", "Platform Core", "platform-core"),
                team("acme", "ops", "ops"),
                team("other", "X", "x"),
            ],
        }
    }

    #[test]
    fn required_orgs_and_teams_filter_groups() {
        let c = config(r#", "orgs": [{"name": "acme", "teams": ["platform-core"]}]"#);
        assert_eq!(groups(&c, &membership(), "u").unwrap(), ["acme", "acme:Platform Core"]);
        let c = config(r#", "orgs": [{"name": "acme"}], "teamNameField": "both""#);
        assert_eq!(
            groups(&c, &membership(), "u").unwrap(),
            ["acme", "acme:Platform Core", "acme:platform-core", "acme:ops"]
        );
        let c = config(r#", "orgs": [{"name": "acme"}], "loadAllGroups": true, "teamNameField": "slug""#);
        assert_eq!(
            groups(&c, &membership(), "u").unwrap(),
            ["acme", "acme:platform-core", "acme:ops", "other", "other:x"]
        );
    }

    #[test]
    fn not_in_a_required_org_or_team_is_denied() {
        for orgs in [r#"[{"name": "nope"}]"#, r#"[{"name": "acme", "teams": ["red"]}]"#] {
            let c = config(&format!(r#", "orgs": {orgs}"#));
            let err = groups(&c, &membership(), "octo").unwrap_err();
            assert!(matches!(err, ConnectorError::Denied(_)), "{orgs}");
            assert!(err.message().contains("octo"), "{}", err.message());
        }
    }

    #[test]
    fn the_legacy_org_gives_bare_team_names_and_denies_nobody() {
        let c = config(r#", "org": "acme""#);
        let got = groups(&c, &membership(), "octo").unwrap();
        assert!(!got.is_empty() && got.iter().all(|g| !g.contains(':')), "{got:?}");
        let c = config(r#", "org": "nowhere""#);
        assert_eq!(groups(&c, &membership(), "octo").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn groups_without_orgs_need_load_all_groups() {
        assert!(groups(&config(""), &membership(), "u").unwrap().is_empty());
    }

    #[test]
    fn email_prefers_the_domain_then_the_primary_verified_one() {
        let e = |email: &str, primary, verified| Email { email: email.into(), primary, verified };
        let emails = [e("a@x.test", true, true), e("b@acme.test", false, true), e("c@acme.test", false, false)];
        assert_eq!(pick_email(&config(""), &emails).as_deref(), Some("a@x.test"));
        let c = config(r#", "preferredEmailDomain": "acme.test""#);
        assert_eq!(pick_email(&c, &emails).as_deref(), Some("b@acme.test"));
        assert_eq!(pick_email(&config(""), &[e("a@x.test", true, false)]), None);
        let ghe = config(r#", "hostName": "ghe.test""#);
        assert_eq!(pick_email(&ghe, &[e("a@x.test", true, false)]).as_deref(), Some("a@x.test"));
    }
}
