//! Caps on a config's size and nesting, checked by a cheap scan before the YAML parser sees the
//! text: a deeply nested document would otherwise take the parser seconds to reject.

/// Largest config file accepted (Dex's configs are a few KiB; inline PEMs keep it far below).
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting accepted: block mappings/sequences plus flow `[`/`{`. Dex's config needs
/// about 6 (`connectors[].config.claimMapping...`).
pub const MAX_CONFIG_DEPTH: usize = 64;

/// Refuses `text` when it is larger than [`MAX_CONFIG_BYTES`] or nests deeper than
/// [`MAX_CONFIG_DEPTH`]; the message names the limit and what to do.
pub(crate) fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(too_large(text.len() as u64));
    }
    let depth = depth(text);
    if depth > MAX_CONFIG_DEPTH {
        return Err(format!(
            "the YAML nests deeper than {MAX_CONFIG_DEPTH} levels, the most a config may have; \
             flatten it (a Dex-shaped config needs fewer than 10)"
        ));
    }
    Ok(())
}

/// The error for a config of `len` bytes.
pub(crate) fn too_large(len: u64) -> String {
    format!(
        "the config is {len} bytes, more than the {MAX_CONFIG_BYTES} bytes (4 MiB) a config may have; \
         move large values (certificates, plugin files) out of it"
    )
}

/// An upper bound on the nesting depth of `text` (it may over-count, never under-count by much):
/// per line, the indentation levels still open, plus the `- ` / `? ` that open a nested node on
/// the same line, plus the flow brackets open (outside quotes and comments). Block scalars
/// (`|`, `>`) are skipped. Stops counting once past the cap.
fn depth(text: &str) -> usize {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut deepest = 0usize;
    // Indentation of the line that opened a block scalar: lines indented deeper are its text.
    let mut block_scalar: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = line.get(indent..).unwrap_or_default();
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(owner) = block_scalar {
            if indent > owner {
                continue;
            }
            block_scalar = None;
        }
        if flow == 0 {
            while indents.last().is_some_and(|&open| open >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut level = indents.len() + flow;
        let mut chars = rest.chars().peekable();
        let mut at_node_start = true;
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut last_significant = ' ';
        while let Some(c) = chars.next() {
            if let Some(q) = quote {
                if c == q {
                    // '' inside single quotes is an escaped quote.
                    if q == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                } else if c == '\\' && q == '"' {
                    chars.next();
                }
                previous = c;
                continue;
            }
            match c {
                '#' if previous == ' ' || previous == '\t' => break,
                '"' | '\'' if at_node_start || flow > 0 => quote = Some(c),
                '[' | '{' if at_node_start || flow > 0 => {
                    flow += 1;
                    level += 1;
                }
                ']' | '}' if flow > 0 => flow -= 1,
                '-' | '?' if at_node_start && chars.peek().is_none_or(|n| *n == ' ') => level += 1,
                _ => {}
            }
            deepest = deepest.max(level);
            if deepest > MAX_CONFIG_DEPTH {
                return deepest;
            }
            at_node_start = match c {
                ' ' | '\t' => at_node_start || matches!(previous, ':' | '-' | '?' | ',' | '[' | '{'),
                '[' | '{' | ',' => true,
                '-' | '?' => at_node_start,
                _ => false,
            };
            previous = c;
            if !c.is_whitespace() {
                last_significant = c;
            }
        }
        deepest = deepest.max(level);
        if flow == 0 && quote.is_none() && is_block_scalar_header(rest, last_significant) {
            block_scalar = Some(indent);
        }
    }
    deepest
}

/// Whether a line ends in a block scalar header (`key: |`, `- >-`, `key: |2+`).
fn is_block_scalar_header(line: &str, last: char) -> bool {
    if !(last == '|' || last == '>' || last == '-' || last == '+' || last.is_ascii_digit()) {
        return false;
    }
    let line = line.split(" #").next().unwrap_or_default().trim_end();
    let token = line.rsplit(' ').next().unwrap_or_default();
    let mut chars = token.chars();
    matches!(chars.next(), Some('|' | '>')) && chars.all(|c| matches!(c, '-' | '+' | '1'..='9'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_configs_are_shallow() {
        let yaml = r#"issuer: http://127.0.0.1:5556/dex
storage:
  type: sqlite3
  config:
    file: x.db
connectors:
- type: ldap
  id: ldap
  config:
    rootCAData: |
      [[[[[[[[[[[[[[[[
      {{{{{{{{{{{{
    userSearch: {baseDN: 'ou=[x', filter: "(a=[)"}
    groups: [[a, b], {c: d}]
  allowedHosts: [a, b] # [[[
"#;
        assert!(depth(yaml) <= 6, "{}", depth(yaml));
        assert_eq!(check(yaml), Ok(()));
    }

    #[test]
    fn deep_flow_block_and_dash_nesting_is_refused_with_the_limit() {
        let flow = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let block: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let dashes = format!("{}x\n", "- ".repeat(100));
        for yaml in [flow, block, dashes] {
            let err = check(&yaml).unwrap_err();
            assert!(err.contains("deeper than 64 levels"), "{err}");
        }
    }

    #[test]
    fn a_huge_config_is_refused_by_size() {
        let err = check(&"#".repeat(MAX_CONFIG_BYTES + 1)).unwrap_err();
        assert!(err.contains("more than the 4194304 bytes (4 MiB)"), "{err}");
    }
}
