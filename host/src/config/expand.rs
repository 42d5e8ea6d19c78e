//! `$VAR` / `${VAR}` expansion in config string values (`$$` is a literal `$`). A variable
//! that is not set is an error naming it, never a silent empty string. Values where a `$` is
//! data (bcrypt hashes) are not expanded.

use serde_yaml::Value;

/// Expands every string in `value`, except under keys named in `verbatim`. `path` is the key
/// path so far, for error messages.
pub fn expand(value: &mut Value, path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    match value {
        Value::String(text) => {
            *text = expand_str(text, env).map_err(|var| {
                format!(
                    "{path}: environment variable ${var} is not set; set it, write $$ for a literal $, or set \
                     DEX_EXPAND_ENV=false to take every value literally"
                )
            })?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                if key == "hash" {
                    continue; // password hashes (bcrypt, argon2id) are full of `$`
                }
                let child = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
                expand(item, &child, env)?;
            }
        }
        Value::Tagged(tagged) => expand(&mut tagged.value, path, env)?,
        _ => {}
    }
    Ok(())
}

/// Expands one string; `Err(name)` for a variable that is not set.
fn expand_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                out.push('$');
                rest = after;
                continue;
            };
            let name = &braced[..end];
            out.push_str(&env(name).ok_or_else(|| name.to_string())?);
            rest = &braced[end + 1..];
        } else {
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            let name = &after[..len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                out.push('$');
                rest = after;
                continue;
            }
            out.push_str(&env(name).ok_or_else(|| name.to_string())?);
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            "HOST" => Some("example.com".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_rows() {
        let rows = [
            ("$SECRET", Ok("s3cr3t")),
            ("${SECRET}", Ok("s3cr3t")),
            ("https://${HOST}/cb", Ok("https://example.com/cb")),
            ("a$$b", Ok("a$b")),
            ("cost $10", Ok("cost $10")),
            ("trailing $", Ok("trailing $")),
            ("$MISSING", Err("MISSING")),
            ("${MISSING}x", Err("MISSING")),
        ];
        for (input, want) in rows {
            let got = expand_str(input, &env);
            assert_eq!(got.as_deref().map_err(String::as_str), want, "{input}");
        }
    }

    #[test]
    fn hashes_are_verbatim_and_errors_name_the_path() {
        let mut v: Value = serde_yaml::from_str("a:\n  - hash: $2a$10$abc\n    email: $MISSING\n").unwrap();
        let err = expand(&mut v, "", &env).unwrap_err();
        assert!(err.starts_with("a[0].email: environment variable $MISSING"), "{err}");
        let mut v: Value = serde_yaml::from_str("hash: $2a$10$abc\n").unwrap();
        expand(&mut v, "", &env).unwrap();
        assert_eq!(v["hash"].as_str(), Some("$2a$10$abc"));
    }
}
