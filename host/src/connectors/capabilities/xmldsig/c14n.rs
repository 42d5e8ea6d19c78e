//! Exclusive XML Canonicalization 1.0 without comments (`http://www.w3.org/2001/10/xml-exc-c14n#`)
//! of one element's subtree, optionally leaving one descendant out (the enveloped-signature
//! transform). Only what SAML signatures need: a whole subtree, never an XPath node set.
//!
//! The tree comes from `roxmltree`, which has already normalised line ends and attribute values
//! and expanded character and entity references (a DTD is refused before parsing). Prefixes are
//! read from the document text (roxmltree keeps the resolved namespace URIs), so the output
//! keeps the document's own prefixes, as C14N requires.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId};

/// Canonicalises `element` and its descendants, except the subtree of `omit`. `inclusive`
/// is the `InclusiveNamespaces PrefixList` (`#default` names the default namespace): those
/// prefixes are rendered as inclusive C14N would, wherever they are in scope.
pub(crate) fn canonicalize(element: Node<'_, '_>, omit: Option<NodeId>, inclusive: &[String]) -> String {
    let mut out = String::new();
    let inclusive: Vec<&str> = inclusive.iter().map(|p| if p == "#default" { "" } else { p.as_str() }).collect();
    render(element, omit, &inclusive, &BTreeMap::new(), &mut out);
    out
}

/// The prefix of a qualified name as written (`""` for none).
fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

/// An element's qualified name as written in the document.
fn element_qname<'a>(node: Node<'_, 'a>) -> &'a str {
    let text = node.document().input_text();
    let start = node.range().start + 1;
    let rest = text.get(start..).unwrap_or_default();
    let end = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '>').unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

/// The namespace URI `prefix` is bound to at `node` (`""` when unbound, or the default
/// namespace undeclared).
fn uri_of<'a>(node: Node<'a, '_>, prefix: &str) -> &'a str {
    node.namespaces().find(|ns| ns.name().unwrap_or("") == prefix).map_or("", |ns| ns.uri())
}

fn render(
    node: Node<'_, '_>,
    omit: Option<NodeId>,
    inclusive: &[&str],
    rendered: &BTreeMap<String, String>,
    out: &mut String,
) {
    if Some(node.id()) == omit {
        return;
    }
    if node.is_text() {
        escape_text(node.text().unwrap_or_default(), out);
        return;
    }
    if let Some(pi) = node.pi() {
        out.push_str("<?");
        out.push_str(pi.target);
        if let Some(value) = pi.value {
            out.push(' ');
            out.push_str(value);
        }
        out.push_str("?>");
        return;
    }
    if !node.is_element() {
        return; // comments (this is the variant without comments)
    }
    let text = node.document().input_text();
    let qname = element_qname(node);
    // Attributes with their qualified names as written.
    let attributes: Vec<(&str, roxmltree::Attribute<'_, '_>)> =
        node.attributes().map(|a| (text.get(a.range_qname()).unwrap_or_default(), a)).collect();

    // The namespaces this element visibly uses, and the inclusive ones in scope.
    let mut used: Vec<&str> = vec![prefix_of(qname)];
    for (name, _) in &attributes {
        let p = prefix_of(name);
        if !p.is_empty() {
            used.push(p);
        }
    }
    for p in inclusive {
        if p.is_empty() || node.namespaces().any(|ns| ns.name() == Some(*p)) {
            used.push(p);
        }
    }
    used.sort_unstable();
    used.dedup();
    let mut scope = rendered.clone();
    let mut declarations = Vec::new();
    for prefix in used {
        if prefix == "xml" {
            continue;
        }
        let uri = uri_of(node, prefix);
        let already = rendered.get(prefix).map(String::as_str);
        // An empty default namespace is only declared to undo an ancestor's non-empty one.
        let needed = if prefix.is_empty() && uri.is_empty() {
            already.is_some_and(|u| !u.is_empty())
        } else {
            already != Some(uri)
        };
        if needed {
            declarations.push((prefix, uri));
            scope.insert(prefix.to_string(), uri.to_string());
        }
    }
    // Sorted by prefix, the default namespace (empty prefix) first.
    declarations.sort_unstable();

    out.push('<');
    out.push_str(qname);
    for (prefix, uri) in declarations {
        if prefix.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
        }
        escape_attribute(uri, out);
        out.push('"');
    }
    let mut sorted = attributes;
    sorted.sort_by(|(_, a), (_, b)| {
        (a.namespace().unwrap_or(""), a.name()).cmp(&(b.namespace().unwrap_or(""), b.name()))
    });
    for (name, attribute) in sorted {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_attribute(attribute.value(), out);
        out.push('"');
    }
    out.push('>');
    for child in node.children() {
        render(child, omit, inclusive, &scope, out);
    }
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attribute(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        canonicalize(doc.root_element(), None, &[])
    }

    fn c14n_of(xml: &str, local: &str, inclusive: &[&str]) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let node = doc.descendants().find(|n| n.tag_name().name() == local).unwrap();
        let inclusive: Vec<String> = inclusive.iter().map(|s| s.to_string()).collect();
        canonicalize(node, None, &inclusive)
    }

    /// Input beside its exclusive canonical form.
    #[test]
    fn rows() {
        for (input, expected) in [
            // Empty elements become pairs; attributes double-quoted and sorted.
            ("<a b='1' a=\"2\"/>", "<a a=\"2\" b=\"1\"></a>"),
            // Whitespace inside tags normalised; text kept verbatim; comments dropped.
            ("<a  x = '1' >\n  t <!-- c -->u\n</a >", "<a x=\"1\">\n  t u\n</a>"),
            // Escapes in text and attributes; character references expanded; CDATA as text.
            (
                "<a v='&lt;&amp;&quot;&#9;&#10;&#13;&gt;'>&lt;&amp;&gt;&#13;<![CDATA[<x>&]]></a>",
                "<a v=\"&lt;&amp;&quot;&#x9;&#xA;&#xD;>\">&lt;&amp;&gt;&#xD;&lt;x&gt;&amp;</a>",
            ),
            // CRLF normalised to LF; literal whitespace in attributes normalised to spaces.
            ("<a v='x\ty\nz'>1\r\n2\r3</a>", "<a v=\"x y z\">1\n2\n3</a>"),
            // Namespaces: only visibly used ones, on the first output element that uses them.
            (
                "<r xmlns:a='urn:a' xmlns:b='urn:b'><a:x b:y='1'><a:z/></a:x></r>",
                "<r><a:x xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" b:y=\"1\"><a:z></a:z></a:x></r>",
            ),
            // Default namespace first; attributes sorted by namespace URI then local name.
            (
                "<r xmlns='urn:d' xmlns:z='urn:a' z:k='1' b='2' a='3'/>",
                "<r xmlns=\"urn:d\" xmlns:z=\"urn:a\" a=\"3\" b=\"2\" z:k=\"1\"></r>",
            ),
            // An undone default namespace; a redeclared prefix with another URI.
            (
                "<r xmlns='urn:d'><x xmlns=''/><p:y xmlns:p='urn:1'><p:y xmlns:p='urn:2'/></p:y></r>",
                "<r xmlns=\"urn:d\"><x xmlns=\"\"></x><p:y xmlns:p=\"urn:1\"><p:y xmlns:p=\"urn:2\"></p:y></p:y></r>",
            ),
            // Processing instructions stay; xml:lang is an attribute, never a declaration.
            ("<a xml:lang='en'><?pi data?></a>", "<a xml:lang=\"en\"><?pi data?></a>"),
        ] {
            assert_eq!(c14n(input), expected, "{input}");
        }
    }

    #[test]
    fn a_subtree_declares_what_it_uses_from_its_ancestors() {
        let xml =
            "<p:r xmlns:p='urn:p' xmlns:s='urn:s' xmlns:xs='urn:xs'><s:a ID='1'><s:v t='xs:string'>x</s:v></s:a></p:r>";
        assert_eq!(c14n_of(xml, "a", &[]), "<s:a xmlns:s=\"urn:s\" ID=\"1\"><s:v t=\"xs:string\">x</s:v></s:a>");
        // With `xs` in the InclusiveNamespaces prefix list, it is declared where it is in scope.
        assert_eq!(
            c14n_of(xml, "a", &["xs"]),
            "<s:a xmlns:s=\"urn:s\" xmlns:xs=\"urn:xs\" ID=\"1\"><s:v t=\"xs:string\">x</s:v></s:a>"
        );
    }

    #[test]
    fn the_omitted_subtree_leaves_its_surrounding_text() {
        let doc = roxmltree::Document::parse("<a>\n  <sig><x/></sig>\n  <b/>\n</a>").unwrap();
        let sig = doc.descendants().find(|n| n.has_tag_name("sig")).unwrap();
        assert_eq!(canonicalize(doc.root_element(), Some(sig.id()), &[]), "<a>\n  \n  <b></b>\n</a>");
    }
}
