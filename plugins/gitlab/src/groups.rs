//! GitLab's groups as Dex reads them: full paths from `/oauth/userinfo` (or the groups API with
//! `inheritedGroups`), role-qualified `path:role` entries with `getGroupsPermission`, and the
//! `groups` filter. Pure functions: the calls are in `lib.rs`.

use serde::Deserialize;

/// `/oauth/userinfo`: the group paths and GitLab's per-role claims.
#[derive(Deserialize, Default)]
pub struct UserInfo {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, rename = "https://gitlab.org/claims/groups/owner")]
    pub owner: Vec<String>,
    #[serde(default, rename = "https://gitlab.org/claims/groups/maintainer")]
    pub maintainer: Vec<String>,
    #[serde(default, rename = "https://gitlab.org/claims/groups/developer")]
    pub developer: Vec<String>,
}

/// An item of `/api/v4/groups`.
#[derive(Deserialize)]
pub struct Group {
    pub id: u64,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub full_path: String,
}

impl Group {
    /// `full_path`, falling back to `path`.
    pub fn name(&self) -> &str {
        if self.full_path.is_empty() { &self.path } else { &self.full_path }
    }
}

/// Whether `path` is one of `paths` or below one of them (`acme` covers `acme/platform`, not
/// `acme-x`).
fn covered(path: &str, paths: &[String]) -> bool {
    paths.iter().any(|p| path == p || path.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/')))
}

/// The role userinfo gives `path`: the first of owner, maintainer, developer that covers it.
pub fn role(path: &str, info: &UserInfo) -> Option<&'static str> {
    [("owner", &info.owner), ("maintainer", &info.maintainer), ("developer", &info.developer)]
        .into_iter()
        .find(|(_, paths)| covered(path, paths))
        .map(|(role, _)| role)
}

/// `paths`, then `path:role` for each path userinfo gives a role.
pub fn with_roles(paths: Vec<String>, info: &UserInfo) -> Vec<String> {
    let roles: Vec<String> = paths.iter().filter_map(|p| role(p, info).map(|r| format!("{p}:{r}"))).collect();
    paths.into_iter().chain(roles).collect()
}

/// The suffix of a GitLab access level (`/members/all/{id}`'s `access_level`).
pub fn access_level(level: u64) -> Option<&'static str> {
    Some(match level {
        5 => "minimal_access",
        10 => "guest",
        15 => "planner",
        20 => "reporter",
        25 => "security_manager",
        30 => "developer",
        40 => "maintainer",
        50 => "owner",
        60 => "admin",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> UserInfo {
        UserInfo {
            groups: vec!["acme".into(), "acme/platform".into(), "acme-x".into(), "ops".into()],
            owner: vec!["acme".into()],
            maintainer: vec!["ops".into()],
            developer: vec!["acme/platform".into()],
        }
    }

    #[test]
    fn roles_follow_the_first_covering_list() {
        let i = info();
        assert_eq!(role("acme/platform", &i), Some("owner"), "owner of the parent comes first");
        assert_eq!(role("acme-x", &i), None, "a prefix without / is another group");
        assert_eq!(
            with_roles(i.groups.clone(), &i),
            ["acme", "acme/platform", "acme-x", "ops", "acme:owner", "acme/platform:owner", "ops:maintainer"]
        );
        assert_eq!(access_level(30), Some("developer"));
        assert_eq!(access_level(0), None);
    }
}
