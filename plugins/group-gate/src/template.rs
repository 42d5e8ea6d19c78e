//! `{{ name }}` templates in `addClaims` strings: the names are the identity's fields and the
//! login's client and connector; anything else is refused when the config is read.

/// The names a template may use.
pub const NAMES: [&str; 7] =
    ["user_id", "username", "preferred_username", "email", "email_domain", "client_id", "connector_id"];

/// A string claim value, split into literal text and `{{ name }}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Name(&'static str),
}

impl Template {
    /// Parses `text`; the error names the unknown reference or the unclosed `{{`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let (before, after) = rest.split_at(start);
            if !before.is_empty() {
                parts.push(Part::Text(before.into()));
            }
            let after = after.get(2..).unwrap_or_default();
            let end = after.find("}}").ok_or_else(|| format!("{text:?} opens {{{{ without closing it with }}}}"))?;
            let name = after.get(..end).unwrap_or_default().trim();
            let known = NAMES.iter().find(|n| **n == name).ok_or_else(|| {
                format!("{text:?} refers to {{{{ {name} }}}}; the names a template may use are {}", NAMES.join(", "))
            })?;
            parts.push(Part::Name(known));
            rest = after.get(end + 2..).unwrap_or_default();
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.into()));
        }
        Ok(Self { parts })
    }

    /// Whether the text has no reference at all.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The text with every reference filled by `value`; `None` when one has no value (the user
    /// has no email, say), so the claim is left out rather than half-filled.
    pub fn render(&self, value: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Name(n) => out.push_str(&value(n)?),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "email" => Some("jane@example.com".into()),
            "username" => Some("Jane".into()),
            _ => None,
        }
    }

    /// (template, rendered or None, or the parse error) — add a row to extend.
    #[test]
    fn templates() {
        let rows: [(&str, Result<Option<&str>, &str>); 7] = [
            ("plain", Ok(Some("plain"))),
            ("{{ email }}", Ok(Some("jane@example.com"))),
            ("{{username}} <{{ email }}>", Ok(Some("Jane <jane@example.com>"))),
            ("{{ preferred_username }}", Ok(None)),
            ("", Ok(Some(""))),
            (
                "{{ password }}",
                Err(
                    "\"{{ password }}\" refers to {{ password }}; the names a template may use are user_id, username, preferred_username, email, email_domain, client_id, connector_id",
                ),
            ),
            ("{{ email", Err("\"{{ email\" opens {{ without closing it with }}")),
        ];
        for (text, want) in rows {
            let got = Template::parse(text).map(|t| t.render(values));
            let want = want.map(|o| o.map(str::to_string)).map_err(str::to_string);
            assert_eq!(got, want, "{text}");
        }
    }
}
