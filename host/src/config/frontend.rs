//! `frontend`: the pages' templates, files and theme — the built-in ones, with an operator's
//! `frontend.dir` replacing any of them by name, as Dex's web folder does. Loaded with the
//! config, so a template that does not compile refuses the config (at start, or the reload
//! that brought it: a broken theme never replaces a working one).
//!
//! `frontend.dir` holds `templates/<name>.html` (minijinja; the names in [`TEMPLATES`]),
//! `static/<file>` (served at `/static/<file>`) and `themes/<theme>/<file>` (served at
//! `/theme/<file>`; `styles.css` is linked from every page). Dex's Go templates do not carry
//! over: their syntax is not Jinja's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::Environment;

use super::model::FrontendConfig;

/// The built-in templates, by the names a `frontend.dir` replaces them with.
pub const TEMPLATES: [(&str, &str); 10] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("chooser.html", include_str!("../../templates/chooser.html")),
    ("password.html", include_str!("../../templates/password.html")),
    ("approval.html", include_str!("../../templates/approval.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("logout.html", include_str!("../../templates/logout.html")),
    ("logout_confirm.html", include_str!("../../templates/logout_confirm.html")),
    ("oob.html", include_str!("../../templates/oob.html")),
    ("device.html", include_str!("../../templates/device.html")),
    ("device_success.html", include_str!("../../templates/device_success.html")),
];

/// The built-in stylesheet, served at `/static/main.css` unless `frontend.dir` has one.
pub const STYLESHEET: &str = include_str!("../../templates/main.css");

/// `frontend.theme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Theme {
    /// No theme: light or dark as the browser prefers.
    Auto,
    /// Dex's built-in `light` and `dark`.
    Light,
    Dark,
    /// `frontend.dir/themes/<name>/`: its files at `/theme/<file>`, its `styles.css` linked.
    Folder(PathBuf),
}

impl Theme {
    /// The `data-theme` of the built-in stylesheet.
    pub fn scheme(&self) -> Option<&'static str> {
        match self {
            Self::Light => Some("light"),
            Self::Dark => Some("dark"),
            _ => None,
        }
    }
}

/// The pages of one config.
#[derive(Clone)]
pub struct Pages {
    env: Arc<Environment<'static>>,
    /// `frontend.dir/static`, when it exists.
    pub static_dir: Option<PathBuf>,
    pub theme: Theme,
    /// `frontend.extra`, handed to every template as `extra`.
    pub extra: BTreeMap<String, String>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").field("static_dir", &self.static_dir).field("theme", &self.theme).finish()
    }
}

impl Pages {
    /// The built-in pages only.
    pub fn builtin() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("built-in template {name} does not compile: {e}");
            }
        }
        Self { env: Arc::new(env), static_dir: None, theme: Theme::Auto, extra: BTreeMap::new() }
    }

    /// The pages `frontend` asks for; `dir` is resolved against `base` (the config's folder).
    pub fn load(frontend: &FrontendConfig, base: &Path) -> Result<Self, String> {
        let mut pages = Self::builtin();
        pages.extra = frontend.extra.clone();
        let dir = frontend.dir.as_deref().filter(|d| !d.is_empty()).map(|d| base.join(d));
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                return Err(format!("frontend.dir: {} is not a folder; create it or correct the path", dir.display()));
            }
            let mut env = Environment::new();
            for (name, builtin) in TEMPLATES {
                let path = dir.join("templates").join(name);
                let source = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => builtin.to_string(),
                    Err(e) => return Err(format!("frontend.dir: cannot read {}: {e}", path.display())),
                };
                env.add_template_owned(name, source).map_err(|e| {
                    format!(
                        "frontend.dir: {} does not compile: {e} (templates are minijinja, Jinja2's syntax; Dex's Go \
                         templates do not carry over): rewrite it in Jinja2's syntax, or delete {} to keep the \
                         built-in page; a copy of Dex's web/ folder keeps its static/ and themes/ with its \
                         templates/ removed",
                        path.display(),
                        path.display()
                    )
                })?;
            }
            pages.env = Arc::new(env);
            let statics = dir.join("static");
            pages.static_dir = statics.is_dir().then_some(statics);
        }
        pages.theme = match frontend.theme.as_deref().filter(|t| !t.is_empty()) {
            None => Theme::Auto,
            Some(name) => match dir.as_ref().map(|d| d.join("themes").join(name)).filter(|t| t.is_dir()) {
                Some(folder) => Theme::Folder(folder),
                None if name == "light" => Theme::Light,
                None if name == "dark" => Theme::Dark,
                None => {
                    return Err(format!(
                        "frontend.theme: {name:?} is neither built in (light, dark) nor a folder themes/{name} in frontend.dir"
                    ));
                }
            },
        };
        Ok(pages)
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }
}

/// Whether `name` may be served from a frontend folder: one plain file name, no path.
pub fn servable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The `Content-Type` of a served frontend file.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servable_names_are_plain_files() {
        assert!(servable("styles.css") && servable("logo-2.png"));
        for bad in ["", ".env", "../x", "a/b", "a\\b", "%2e%2e"] {
            assert!(!servable(bad), "{bad}");
        }
    }

    #[test]
    fn a_folder_replaces_templates_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::create_dir_all(dir.path().join("themes/corp")).unwrap();
        std::fs::write(dir.path().join("templates/error.html"), "custom {{ extra.tagline }}").unwrap();
        let mut config = FrontendConfig {
            dir: Some(dir.path().display().to_string()),
            theme: Some("corp".into()),
            ..Default::default()
        };
        config.extra.insert("tagline".into(), "hello".into());
        let pages = Pages::load(&config, Path::new("/")).unwrap();
        let ctx = minijinja::context! { extra => pages.extra.clone() };
        assert_eq!(pages.env().get_template("error.html").unwrap().render(ctx).unwrap(), "custom hello");
        assert!(matches!(pages.theme, Theme::Folder(_)));
        std::fs::write(dir.path().join("templates/error.html"), "{{ .Issuer }}").unwrap();
        let refused = Pages::load(&config, Path::new("/")).unwrap_err();
        assert!(refused.contains("error.html does not compile") && refused.contains("Go templates"), "{refused}");
        config.theme = Some("neon".into());
        std::fs::remove_file(dir.path().join("templates/error.html")).unwrap();
        assert!(Pages::load(&config, Path::new("/")).unwrap_err().contains("frontend.theme: \"neon\""));
    }
}
