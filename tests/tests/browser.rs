//! A person logs in through a real browser: headless Chromium, driven over WebDriver, opens the
//! example app, clicks Login, picks "Log in with Email", fills the form by its labels, approves
//! and sees the claims; logs a device in (RFC 8628: the code page, the approval page naming the
//! code); logs out, and does it again at a phone's width. A SAML login too: the IdP's form
//! POSTs cross-site to the broker's callback, which relays it to carry the login cookie. Every page is checked
//! for basic accessibility (`<html lang>`, one `<h1>`, labelled inputs, a visible keyboard focus
//! style, no horizontal scroll, submit buttons on screen) and kept as a screenshot in
//! `target/test-artifacts/browser/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use portcullis_tests::TestBroker;
use portcullis_tests::browser::{CHROMIUM, Chromedriver, artifacts_dir};
use serde_json::{Value, json};

/// The longest any page may take to show what the next step looks for.
const WAIT: Duration = Duration::from_secs(30);
/// `BASE_CONFIG`'s static password user (its hash is of "password").
const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "password";
const USER_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
/// A laptop's window and a phone's (CSS pixels).
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (375, 740);

/// Opens a Chromium session on `driver` with a throwaway profile in `profile`.
async fn open_browser(driver: &Chromedriver, profile: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                "--no-first-run",
                "--no-default-browser-check",
                "--lang=en-US",
            ],
        },
        "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    // chromedriver speaks plain HTTP on loopback: no TLS connector needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session through chromedriver at {}: {e}", driver.url))
}

/// chromedriver's `goog/cdp/execute`: one Chrome DevTools Protocol command (`{cmd, params}`).
#[derive(Debug)]
struct Cdp(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// One person at one window size, numbering and saving each page they see.
struct Person {
    browser: Client,
    device: &'static str,
    width: u32,
    dir: PathBuf,
    step: u32,
}

impl Person {
    /// Sets the window to `size` and checks the page really is that wide.
    async fn resize(&mut self, device: &'static str, size: (u32, u32)) {
        self.device = device;
        self.width = size.0;
        self.step = 0;
        self.browser.set_window_size(size.0, size.1).await.expect("set the window size");
        let width = self.js("return window.innerWidth", vec![]).await;
        assert_eq!(width, json!(size.0), "the {device} viewport is not {} CSS pixels wide", size.0);
    }

    /// Makes pages see `prefers-color-scheme: <scheme>` (Chrome DevTools Protocol via chromedriver).
    async fn color_scheme(&self, scheme: &str) {
        let command = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": { "features": [{ "name": "prefers-color-scheme", "value": scheme }] },
        });
        self.browser.issue_cmd(Cdp(command)).await.expect("emulate a color scheme");
        let matches = self.js(&format!("return matchMedia('(prefers-color-scheme: {scheme})').matches"), vec![]).await;
        assert_eq!(matches, json!(true), "the browser does not emulate prefers-color-scheme: {scheme}");
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.browser.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits (at most `WAIT`) for the element that shows the next page has arrived.
    async fn wait_for(&self, what: Locator<'_>) -> Element {
        match self.browser.wait().at_most(WAIT).for_element(what).await {
            Ok(element) => element,
            Err(e) => {
                let url = self.browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let text = self.browser.find(Locator::Css("body")).await.ok();
                let text = match text {
                    Some(body) => body.text().await.unwrap_or_default(),
                    None => String::new(),
                };
                panic!("waited {} s for {what:?} on {url} ({e}); the page says:\n{text}", WAIT.as_secs())
            }
        }
    }

    /// A button by its visible text.
    async fn button(&self, text: &str) -> Element {
        self.wait_for(Locator::XPath(&format!("//button[normalize-space()='{text}']"))).await
    }

    /// The input a `<label for>` with exactly `text` points at.
    async fn field(&self, text: &str) -> Element {
        let label = self.wait_for(Locator::XPath(&format!("//label[normalize-space()='{text}']"))).await;
        let id =
            label.attr("for").await.expect("label attribute").unwrap_or_else(|| panic!("label {text:?} has no for"));
        self.browser.find(Locator::Id(&id)).await.unwrap_or_else(|e| panic!("label {text:?} points at no #{id}: {e}"))
    }

    async fn fill(&self, label: &str, value: &str) {
        let input = self.field(label).await;
        input.clear().await.expect("clear the field");
        input.send_keys(value).await.expect("type into the field");
    }

    /// Saves a screenshot of what the person sees as `<device>-<nn>-<name>.png`, then checks
    /// the page's accessibility basics.
    async fn page(&mut self, name: &str) {
        self.step += 1;
        let png = self.browser.screenshot().await.expect("screenshot");
        let path = self.dir.join(format!("{}-{:02}-{name}.png", self.device, self.step));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let problems = self.audit().await;
        let url = self.browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        assert!(
            problems.is_empty(),
            "{} page {name} ({url}) at {} px:\n  {}",
            self.device,
            self.width,
            problems.join("\n  ")
        );
    }

    /// `<html lang>`, a `<title>`, one `<main>` and one `<h1>`, a label for every input, no
    /// horizontal scroll, every form's buttons within the viewport, text contrast (WCAG AA), and
    /// a visible keyboard focus style on every focusable element.
    async fn audit(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for checks in [STATIC_CHECKS, CONTRAST_CHECKS] {
            let found = self.js(checks, vec![]).await;
            let found = found.as_array().expect("a list of problems").iter();
            problems.extend(found.map(|p| p.as_str().unwrap_or_default().to_string()));
        }
        problems.extend(self.focus_problems().await);
        problems
    }

    /// Presses Tab through the page (bounded) and compares each focused element's outline and
    /// box-shadow with its unfocused ones.
    async fn focus_problems(&self) -> Vec<String> {
        let count = self.js(SNAPSHOT_UNFOCUSED, vec![]).await.as_u64().expect("a count") as usize;
        let mut seen = vec![false; count];
        let mut problems = Vec::new();
        let tab = char::from(Key::Tab);
        // Tabbing may start anywhere and wraps through the document: twice round is enough.
        for _ in 0..2 * count + 2 {
            if seen.iter().all(|s| *s) {
                break;
            }
            let keys = KeyActions::new("keyboard".into())
                .then(KeyAction::Down { value: tab })
                .then(KeyAction::Up { value: tab });
            self.browser.perform_actions(keys).await.expect("press Tab");
            let focused = self.js(FOCUSED_RING, vec![]).await;
            let Some(index) = focused["index"].as_u64() else { continue };
            let index = index as usize;
            if index < count && !seen[index] {
                seen[index] = true;
                if focused["visible"] != json!(true) {
                    problems.push(format!(
                        "no visible focus style on {}: unfocused {}, focused {}",
                        focused["what"], focused["before"], focused["now"]
                    ));
                }
            }
        }
        if seen.iter().any(|s| !s) {
            problems.push(format!("Tab did not reach all {count} focusable elements: reached {seen:?}"));
        }
        problems
    }
}

/// Returns a list of problems: lang, title, landmark, headings, labels, horizontal scroll, form
/// buttons.
const STATIC_CHECKS: &str = r#"
const problems = [];
if (!(document.documentElement.getAttribute('lang') || '').trim()) problems.push('<html> has no lang');
if (!document.title.trim()) problems.push('no <title>');
if (document.querySelectorAll('main').length !== 1) problems.push('no single <main> landmark');
const h1 = document.querySelectorAll('h1').length;
if (h1 !== 1) problems.push(`${h1} <h1> elements instead of one`);
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = [...el.labels].some(l => l.textContent.trim() !== '')
    || (el.getAttribute('aria-label') || '').trim() !== '' || el.hasAttribute('aria-labelledby');
  if (!labelled) problems.push(`no label for ${el.outerHTML}`);
}
const width = document.documentElement.scrollWidth;
if (width > window.innerWidth) {
  problems.push(`horizontal scroll: content ${width} px wide in a ${window.innerWidth} px viewport`);
}
for (const b of document.querySelectorAll('form button, form input[type=submit]')) {
  // Scrolled to vertically only: a person should not have to scroll sideways to find it.
  b.scrollIntoView({ block: 'center' });
  window.scrollTo(0, window.scrollY);
  const r = b.getBoundingClientRect();
  const onScreen = r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth
    && r.top >= 0 && r.bottom <= window.innerHeight;
  if (!onScreen) problems.push(`button "${b.textContent.trim()}" is not fully on screen: ${JSON.stringify(r)}`);
}
window.scrollTo(0, 0);
return problems;
"#;

/// Returns a list of text whose contrast with what is behind it is below WCAG AA: 4.5:1, or 3:1
/// for large text (24 px, or 18.66 px bold). Backgrounds are composited from the root down.
const CONTRAST_CHECKS: &str = r#"
const problems = [];
const parse = c => {
  const m = /rgba?\(([^)]+)\)/.exec(c);
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const lum = ([r, g, b]) => {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
const darkCanvas = matchMedia('(prefers-color-scheme: dark)').matches
  && getComputedStyle(document.documentElement).colorScheme.includes('dark');
const behind = el => {
  const chain = [];
  for (let e = el; e; e = e.parentElement) chain.unshift(e);
  let bg = darkCanvas ? [18, 18, 18, 1] : [255, 255, 255, 1];
  for (const e of chain) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) bg = over(c, bg);
  }
  return bg;
};
for (const el of document.body.querySelectorAll('*')) {
  const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
  const s = getComputedStyle(el);
  if (!text || el.getClientRects().length === 0 || s.visibility !== 'visible') continue;
  const fg = parse(s.color);
  if (!fg) { problems.push(`cannot read the color ${s.color} of "${text.slice(0, 40)}"`); continue; }
  const bg = behind(el);
  const [hi, lo] = [lum(over(fg, bg)), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(s.fontSize);
  const need = size >= 24 || (parseInt(s.fontWeight, 10) >= 700 && size >= 18.66) ? 3 : 4.5;
  if (ratio < need) {
    problems.push(`contrast ${ratio.toFixed(2)}:1 (needs ${need}:1) for "${text.slice(0, 40)}": `
      + `${s.color} on rgb(${bg.slice(0, 3).map(Math.round).join(', ')})`);
  }
}
return problems;
"#;

/// Blurs whatever has focus, remembers every focusable element's unfocused ring, returns how many.
const SNAPSHOT_UNFOCUSED: &str = r#"
const ring = el => {
  const s = getComputedStyle(el);
  return `outline: ${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}; box-shadow: ${s.boxShadow}`;
};
if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
const focusable = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')]
  .filter(el => !el.disabled && el.getClientRects().length > 0);
window.portcullisUnfocused = focusable.map(el => [el, ring(el)]);
return focusable.length;
"#;

/// The focused element's index among the remembered ones, its rings, and whether focus shows.
const FOCUSED_RING: &str = r#"
const el = document.activeElement;
const known = window.portcullisUnfocused || [];
const index = known.findIndex(([e]) => e === el);
if (index < 0) return { index: null };
const s = getComputedStyle(el);
const now = `outline: ${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}; box-shadow: ${s.boxShadow}`;
const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 1;
const visible = now !== known[index][1] && (outline || s.boxShadow !== 'none');
return { index, what: el.outerHTML.slice(0, 120), before: known[index][1], now, visible };
"#;

/// Spoils a page in every way the audit checks: no lang, no title, two headings, an unlabelled
/// input, faint text, a button off screen to the right (so the page scrolls sideways), and no
/// focus ring.
const SPOIL: &str = r#"
document.documentElement.removeAttribute('lang');
document.title = '';
document.querySelector('main').insertAdjacentHTML('beforeend',
  '<h1>Another heading</h1><input id="spoiled"><p style="color: #bbb">faint</p>'
  + '<form><button type="button" style="margin-left: 500px">far</button></form>');
const style = document.createElement('style');
style.textContent = '*:focus, *:focus-visible { outline: none !important; box-shadow: none !important; }';
document.head.append(style);
"#;

/// From the example app's start page to its token page, through the chooser, the password form
/// (a wrong password first if `mistype`) and the approval page. Returns the ID token's claims.
async fn log_in(person: &mut Person, app: &str, mistype: bool) -> Value {
    person.browser.goto(&format!("{app}/")).await.expect("open the example app");
    let login = person.button("Login").await;
    person.page("app").await;
    login.click().await.expect("click Login");

    let email = person.wait_for(Locator::LinkText("Log in with Email")).await;
    person.wait_for(Locator::LinkText("Log in with Example")).await;
    person.page("chooser").await;
    email.click().await.expect("click Log in with Email");

    person.field("Email Address").await;
    person.page("password").await;
    person.fill("Email Address", EMAIL).await;
    if mistype {
        person.fill("Password", "not-the-password").await;
        person.button("Log in").await.click().await.expect("click Log in");
        let alert = person.wait_for(Locator::Css("[role=alert]")).await;
        assert_eq!(alert.text().await.expect("alert text"), "Invalid email address or password.");
        let kept = person.field("Email Address").await.prop("value").await.expect("value");
        assert_eq!(kept.as_deref(), Some(EMAIL), "the form should keep the email after a wrong password");
        let described = person.field("Email Address").await.attr("aria-describedby").await.expect("attribute");
        assert_eq!(described.as_deref(), Some("login-error"), "the error should describe the email field");
        person.page("password-wrong").await;
    }
    person.fill("Password", PASSWORD).await;
    person.button("Log in").await.click().await.expect("click Log in");

    let grant = person.button("Grant access").await;
    let heading = person.browser.find(Locator::Css("h1")).await.expect("h1").text().await.expect("h1 text");
    assert_eq!(heading, "Grant access to Example App?");
    person.page("approval").await;
    grant.click().await.expect("click Grant access");

    let claims = person.wait_for(Locator::Id("claims")).await;
    person.page("tokens").await;
    let shown = person.browser.find(Locator::Css("main")).await.expect("main").text().await.expect("text");
    assert!(shown.contains(EMAIL), "the token page does not show the email:\n{shown}");
    let claims: Value = serde_json::from_str(&claims.text().await.expect("claims text")).expect("the claims are JSON");
    assert!(shown.contains(claims["sub"].as_str().expect("sub")), "the token page does not show the sub");
    claims
}

/// A device's login (RFC 8628) as the person sees it: the code page opened from
/// `verification_uri_complete` (prefilled), the login (or single sign-on), the approval page
/// naming the code, then "return to your device"; the device's poll gets the tokens.
async fn device_login(person: &mut Person, broker: &TestBroker) {
    let http = reqwest::Client::new();
    let codes: Value = http
        .post(broker.url("/device/code"))
        .form(&[("client_id", "tv"), ("scope", "openid email")])
        .send()
        .await
        .expect("device authorization")
        .json()
        .await
        .expect("JSON");
    let user_code = codes["user_code"].as_str().expect("user_code");
    person.browser.goto(codes["verification_uri_complete"].as_str().expect("complete URI")).await.expect("goto");
    let shown = person.field("Code").await.prop("value").await.expect("value");
    assert_eq!(shown.as_deref(), Some(user_code), "the code page is prefilled");
    person.page("device-code").await;
    person.button("Continue").await.click().await.expect("click Continue");
    // With the browser's session still live, single sign-on goes straight to the approval page.
    let next = "//button[normalize-space()='Grant access'] | //a[normalize-space()='Log in with Email']";
    let next = person.wait_for(Locator::XPath(next)).await;
    if next.tag_name().await.expect("tag") == "a" {
        next.click().await.expect("click Log in with Email");
        person.fill("Email Address", EMAIL).await;
        person.fill("Password", PASSWORD).await;
        person.button("Log in").await.click().await.expect("click Log in");
    }
    let grant = person.button("Grant access").await;
    let text = person.browser.find(Locator::Css("main")).await.expect("main").text().await.expect("text");
    assert!(text.contains("Grant access to TV App?") && text.contains(user_code), "{text}");
    person.page("device-approval").await;
    grant.click().await.expect("click Grant access");
    person.wait_for(Locator::XPath("//h1[text()='Device connected']")).await;
    person.page("device-connected").await;
    let tokens: Value = http
        .post(broker.url("/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", codes["device_code"].as_str().expect("device_code")),
            ("client_id", "tv"),
        ])
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("JSON");
    assert!(tokens["id_token"].is_string(), "the device gets its tokens: {tokens}");
}

/// The broker's own pages the login did not pass: a device's login, an error and the
/// logged-out page.
async fn broker_pages(person: &mut Person, broker: &TestBroker) {
    device_login(person, broker).await;
    person
        .browser
        .goto(&broker.url("/auth?client_id=no-such-app&response_type=code&scope=openid"))
        .await
        .expect("goto");
    let heading = person.wait_for(Locator::Css("h1")).await.text().await.expect("h1 text");
    assert_eq!(heading, "Unknown application");
    person.page("broker-error").await;
    // Without an id_token_hint the broker asks first while a session is live (a cross-site link
    // cannot log anyone out); with none, there is nothing to confirm.
    person.browser.goto(&broker.url("/logout")).await.expect("goto");
    let heading = person.wait_for(Locator::Css("h1")).await.text().await.expect("h1 text");
    if heading == "Log out?" {
        person.page("broker-logout-confirm").await;
        person.browser.find(Locator::Css("form button")).await.expect("Log out button").click().await.expect("click");
    }
    person.wait_for(Locator::XPath("//h1[text()='You are logged out']")).await;
    person.page("broker-logged-out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_with_a_password_in_chromium_on_a_laptop_and_a_phone() {
    // Declared first so it is removed last, after the driver has ended the browser using it.
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = Chromedriver::start();
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app_addr = app_listener.local_addr().expect("addr");
    let app = format!("http://{app_addr}");
    let broker = portcullis_tests::browser::broker_for_app(&app).await;
    let router = example_app::router(&example_app::Cli {
        issuer: broker.issuer.clone(),
        listen: app_addr,
        client_id: None,
        client_secret: portcullis_tests::flow::SECRET.to_string(),
        redirect_uri: format!("{app}/callback"),
        post_logout_redirect_uri: format!("{app}/"),
        public: false,
    })
    .await
    .expect("the example app discovers the broker");
    tokio::spawn(async move { axum::serve(app_listener, router).await });

    let browser = open_browser(&driver, profile.path()).await;
    let mut person = Person { browser, device: "desktop", width: DESKTOP.0, dir: artifacts_dir(), step: 0 };
    let expected_sub = portcullis::oidc::sub::encode(USER_ID, "local");

    person.resize("desktop", DESKTOP).await;
    let claims = log_in(&mut person, &app, true).await;
    assert_eq!(claims["email"], json!(EMAIL));
    assert_eq!(claims["email_verified"], json!(true));
    assert_eq!(claims["sub"], json!(expected_sub));
    assert_eq!(claims["iss"], json!(broker.issuer));
    assert_eq!(claims["aud"], json!("example-app"));

    // Logging out through the app ends the broker session and comes back to the app.
    person.browser.find(Locator::LinkText("Log out")).await.expect("a Log out link").click().await.expect("click");
    person.button("Login").await;
    assert_eq!(person.browser.current_url().await.expect("url").as_str(), format!("{app}/"));
    broker_pages(&mut person, &broker).await;

    // The same login at a phone's width, in dark mode: the session ended, so the password is
    // asked again.
    person.resize("phone", PHONE).await;
    person.color_scheme("dark").await;
    let claims = log_in(&mut person, &app, false).await;
    assert_eq!(claims["email"], json!(EMAIL));
    assert_eq!(claims["sub"], json!(expected_sub));
    broker_pages(&mut person, &broker).await;

    // The checks themselves can fail: the app's start page, spoiled in each way they look for.
    person.browser.goto(&format!("{app}/")).await.expect("open the example app");
    person.button("Login").await;
    person.js(SPOIL, vec![]).await;
    let problems = person.audit().await.join("\n");
    for expected in [
        "<html> has no lang",
        "no <title>",
        r#"contrast 1.92:1 (needs 4.5:1) for "faint": rgb(187, 187, 187) on rgb(255, 255, 255)"#,
        "2 <h1> elements instead of one",
        r#"no label for <input id="spoiled">"#,
        "horizontal scroll: content ",
        r#"button "far" is not fully on screen"#,
        r#"no visible focus style on "<input type=\"text\" id=\"extra_scopes\""#,
        r#"no visible focus style on "<button type=\"submit\">Login</button>""#,
    ] {
        assert!(problems.contains(expected), "the audit missed {expected:?} on a spoiled page; it found:\n{problems}");
    }

    person.browser.close().await.expect("close the browser");
}

/// SAML's HTTP-POST binding in a real browser: the broker's page POSTs the AuthnRequest to the
/// fake IdP on another site (`localhost` against the broker's `127.0.0.1`), whose page POSTs
/// the signed response back cross-site, so Chromium leaves the `SameSite=Lax` login cookie
/// behind; the broker relays the POST through its own origin and the login reaches approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_login_posts_back_cross_site_and_completes_in_chromium() {
    use portcullis_tests::saml_idp::{ENTITY_ID, SamlIdp};
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = Chromedriver::start();
    let idp = std::sync::Arc::new(SamlIdp::new().await);
    let ca = idp.ca_data();
    let attributes = vec![
        ("email".to_string(), vec!["jane@example.org".to_string()]),
        ("name".to_string(), vec!["Jane Doe".to_string()]),
    ];
    let sso = idp.serve("u-4711", attributes).await;
    let plugins =
        format!("plugins:\n  dir: \"{}\"\n", portcullis_tests::plugin("saml").parent().expect("dir").display());
    let block = format!(
        "- type: saml\n  id: saml\n  name: Corporate SSO\n  config:\n    ssoURL: {sso}\n    usernameAttr: name\n    \
         emailAttr: email\n    caData: {ca}\n    ssoIssuer: {ENTITY_ID}\n"
    );
    let broker = TestBroker::builder().connectors(&block).extra(&plugins).start().await;
    let (_, challenge) = portcullis_tests::pkce();
    let auth = url::Url::parse_with_params(
        &broker.url("/auth"),
        &[
            ("client_id", portcullis_tests::flow::CLIENT),
            ("redirect_uri", portcullis_tests::flow::CALLBACK),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "s-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("connector_id", "saml"),
        ],
    )
    .expect("auth URL");
    let browser = open_browser(&driver, profile.path()).await;
    let mut person = Person { browser, device: "desktop", width: DESKTOP.0, dir: artifacts_dir(), step: 0 };
    person.browser.goto(auth.as_str()).await.expect("open the authorization URL");
    person.wait_for(Locator::XPath("//h1[starts-with(text(), 'Grant access')]")).await;
    person.page("saml-approval").await;
    person.button("Grant access").await.click().await.expect("click");
    let deadline = std::time::Instant::now() + WAIT;
    let back = loop {
        let url = person.browser.current_url().await.expect("url").to_string();
        if url.starts_with(portcullis_tests::flow::CALLBACK) || std::time::Instant::now() > deadline {
            break url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(back.starts_with(portcullis_tests::flow::CALLBACK) && back.contains("code="), "back to the client: {back}");
    person.browser.close().await.expect("close the browser");
}
