//! Lookups on the callback request the upstream's redirect made.

use crate::CallbackRequest;

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl CallbackRequest {
    /// The first query parameter called `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    /// The first form body parameter called `name`.
    pub fn form_param(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }

    /// `name` from the query, or else from the form body (`response_mode=form_post`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query_param(name).or_else(|| self.form_param(name))
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}
