//! Scope parsing: which claims and tokens a request asks for.

/// The scopes of one request, parsed once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet {
    pub all: Vec<String>,
    pub openid: bool,
    pub profile: bool,
    pub email: bool,
    pub groups: bool,
    pub offline_access: bool,
    pub federated_id: bool,
    /// `audience:server:client_id:<id>`: peers the ID token is also issued to.
    pub audiences: Vec<String>,
}

impl ScopeSet {
    /// Parses a space-separated scope string; unknown scopes are an error (Dex does the same).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = ScopeSet::default();
        for scope in text.split(' ').filter(|s| !s.is_empty()) {
            match scope {
                "openid" => set.openid = true,
                "profile" => set.profile = true,
                "email" => set.email = true,
                "groups" => set.groups = true,
                "offline_access" => set.offline_access = true,
                "federated:id" => set.federated_id = true,
                other => match other.strip_prefix("audience:server:client_id:") {
                    Some(peer) if !peer.is_empty() => set.audiences.push(peer.to_string()),
                    _ => return Err(format!("unrecognized scope {other:?}")),
                },
            }
            if !set.all.iter().any(|s| s == scope) {
                set.all.push(scope.to_string());
            }
        }
        if !set.openid {
            return Err("the openid scope is required".into());
        }
        Ok(set)
    }

    pub fn from_list(list: &[String]) -> Self {
        Self::parse(&list.join(" ")).unwrap_or_default()
    }

    /// Whether every scope of `self` was in `granted` (a refresh may narrow, never widen).
    pub fn is_subset_of(&self, granted: &ScopeSet) -> bool {
        self.all.iter().all(|s| granted.all.contains(s))
    }

    pub fn joined(&self) -> String {
        self.all.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::ScopeSet;

    #[test]
    fn parsing() {
        let s = ScopeSet::parse("openid email  groups offline_access audience:server:client_id:peer").unwrap();
        assert!(s.openid && s.email && s.groups && s.offline_access && !s.profile);
        assert_eq!(s.audiences, vec!["peer".to_string()]);
        assert!(ScopeSet::parse("email").unwrap_err().contains("openid"));
        assert!(ScopeSet::parse("openid admin").unwrap_err().contains("admin"));
        let narrow = ScopeSet::parse("openid email").unwrap();
        assert!(narrow.is_subset_of(&s) && !s.is_subset_of(&narrow));
    }
}
