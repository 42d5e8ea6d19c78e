//! Building LDAP search filters from untrusted input: RFC 4515 value escaping and the
//! `(&<filter>(<attr>=<value>))` shape Dex uses.

/// Escapes an assertion value for an RFC 4515 filter: `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`. Everything else, non-ASCII UTF-8 included, stays as is.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// `(<attr>=<escaped value>)`, and-ed with `base` when there is one.
pub fn equality(base: Option<&str>, attr: &str, value: &str) -> String {
    let test = format!("({attr}={})", escape(value));
    match base {
        Some(base) => format!("(&{base}{test})"),
        None => test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_rfc_4515_specials_and_nothing_else() {
        let cases = [
            ("jane", "jane"),
            ("*", "\\2a"),
            ("jane*(x)", "jane\\2a\\28x\\29"),
            ("a\\b", "a\\5cb"),
            ("nul\0", "nul\\00"),
            ("Zoë Ångström", "Zoë Ångström"),
            ("a,b=c+d", "a,b=c+d"),
            ("\\2a", "\\5c2a"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn builds_the_dex_filter_shape() {
        assert_eq!(equality(None, "uid", "j*"), "(uid=j\\2a)");
        assert_eq!(
            equality(Some("(objectClass=person)"), "uid", "x)(uid=*"),
            "(&(objectClass=person)(uid=x\\29\\28uid=\\2a))"
        );
    }
}
