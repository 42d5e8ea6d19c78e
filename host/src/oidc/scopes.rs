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

/// Most scopes one request may carry; far above what any client asks for, far below what
/// costs anything to check (audit F1: 32,768 audience scopes used to take seconds).
pub const MAX_SCOPES: usize = 64;
/// Longest `scope` parameter, in bytes.
pub const MAX_SCOPE_TEXT: usize = 4096;

impl ScopeSet {
    /// Parses a space-separated scope string; unknown scopes are an error (Dex does the same),
    /// and so are more than `MAX_SCOPES` scopes or `MAX_SCOPE_TEXT` bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let set = Self::parse_optional_openid(text)?;
        if !set.openid {
            return Err("the openid scope is required".into());
        }
        Ok(set)
    }

    /// As `parse`, without requiring `openid`: a grant without a user (`client_credentials`)
    /// issues no ID token, so an OAuth 2.0 client need not ask for one.
    pub fn parse_optional_openid(text: &str) -> Result<Self, String> {
        if text.len() > MAX_SCOPE_TEXT {
            return Err(format!("scope is {} bytes; at most {MAX_SCOPE_TEXT} are accepted", text.len()));
        }
        let mut set = ScopeSet::default();
        let mut seen = std::collections::HashSet::new();
        for scope in text.split(' ').filter(|s| !s.is_empty()) {
            if !seen.insert(scope) {
                continue;
            }
            if seen.len() > MAX_SCOPES {
                return Err(format!("more than {MAX_SCOPES} scopes; ask for fewer"));
            }
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
            set.all.push(scope.to_string());
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
    use super::{MAX_SCOPES, ScopeSet};

    #[test]
    fn parsing() {
        let s = ScopeSet::parse("openid email  groups offline_access audience:server:client_id:peer").unwrap();
        assert!(s.openid && s.email && s.groups && s.offline_access && !s.profile);
        assert_eq!(s.audiences, vec!["peer".to_string()]);
        assert!(ScopeSet::parse("email").unwrap_err().contains("openid"));
        assert!(ScopeSet::parse("openid admin").unwrap_err().contains("admin"));
        let narrow = ScopeSet::parse("openid email").unwrap();
        assert!(narrow.is_subset_of(&s) && !s.is_subset_of(&narrow));
        assert_eq!(ScopeSet::parse("openid openid email").unwrap().all, vec!["openid", "email"]);
        let many: String = (0..MAX_SCOPES).map(|i| format!(" audience:server:client_id:p{i}")).collect();
        assert!(ScopeSet::parse(&format!("openid{many}")).unwrap_err().contains("more than 64"));
        assert!(ScopeSet::parse(&"openid ".repeat(1000)).unwrap_err().contains("at most 4096"));
    }
}
