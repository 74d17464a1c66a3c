//! WhatsApp group invites, decided at the edge (API.md section 5).
//!
//! A link is split twice: once by hand into scheme, authority, path and query exactly as the
//! user wrote them, and once by a WHATWG URL parser ([`crate::core::url`]). It is accepted
//! only when both views agree. WHATWG parsing normalises on purpose (it drops tabs and
//! default ports, turns `\` into `/`, lowercases and IDNA-maps hosts, decodes `%2e` and
//! resolves `.`/`..`); any of those could turn a look-alike into a real WhatsApp link, so
//! where the views differ the input is malformed rather than "fixed".

use std::borrow::Cow;
use std::fmt;

use crate::core::url::{self as whatwg, Parsed};
#[cfg(test)]
use url::Url;

/// Inputs longer than this, counted in bytes before trimming, are malformed.
pub const MAX_INPUT_BYTES: usize = 2048;

const CODE_MIN: usize = 16;
const CODE_MAX: usize = 32;

const CHAT_HOST: &str = "chat.whatsapp.com";
const WEB_HOST: &str = "web.whatsapp.com";
const APP_HOST: &str = "chat";

/// A syntactically valid invite code: 16 to 32 characters of `[A-Za-z0-9]`, case kept.
///
/// Codes are secrets (anyone holding one can join), so `Debug` shows only the redacted
/// form, and there is deliberately no `Display`: use [`InviteCode::as_str`] where the
/// whole code is really meant to go out (the backend call).
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode(String);

impl InviteCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: the first 4 characters and an ellipsis.
    pub fn redacted(&self) -> String {
        // Codes are ASCII, so 4 chars are 4 bytes; `chars` keeps this total anyway.
        let head: String = self.0.chars().take(4).collect();
        format!("{head}…")
    }

    fn from_candidate(s: &str) -> Option<Self> {
        is_code(s).then(|| Self(s.to_owned()))
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InviteCode").field(&self.redacted()).finish()
    }
}

/// The only error: the input is not a WhatsApp group invite link or code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteMalformed;

impl InviteMalformed {
    pub const MESSAGE: &'static str = "not a WhatsApp group invite link or code";
}

impl fmt::Display for InviteMalformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for InviteMalformed {}

/// Parses a bare invite code or an invite link into its code.
///
/// Accepted, after trimming surrounding whitespace (Unicode White_Space, as `str::trim`;
/// inputs over [`MAX_INPUT_BYTES`] are refused before trimming):
/// 1. `CODE` or `CODE/`;
/// 2. `chat.whatsapp.com/[invite/]CODE[/]` with `https://`, `http://` or no scheme, host in
///    any letter case, then an optional `?query` and `#fragment`, both ignored;
/// 3. `https://web.whatsapp.com/…/accept[/]?…code=CODE…`;
/// 4. `whatsapp://chat[/]?…code=CODE…`.
pub fn parse_invite(input: &str) -> Result<InviteCode, InviteMalformed> {
    // Checked before trimming: the bound is on what was sent, and keeps trimming cheap.
    if input.len() > MAX_INPUT_BYTES {
        return Err(InviteMalformed);
    }
    let s = input.trim();
    parse_bare(s)
        .or_else(|| parse_link(s))
        .ok_or(InviteMalformed)
}

fn is_code(s: &str) -> bool {
    (CODE_MIN..=CODE_MAX).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Form 1: a code, optionally followed by one `/`.
fn parse_bare(s: &str) -> Option<InviteCode> {
    InviteCode::from_candidate(s.strip_suffix('/').unwrap_or(s))
}

/// Which of the link forms (2 to 4) a link claims to be, from its scheme and host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Chat,
    Web,
    App,
}

/// A link as the user wrote it, split at the same points WHATWG parsing splits it (true
/// for text that is printable ASCII without `\`, which `parse_link` checks first).
struct RawLink<'a> {
    /// Lowercased scheme; `https` for the schemeless form.
    scheme: &'static str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

fn parse_link(s: &str) -> Option<InviteCode> {
    // Nothing the URL parser would silently drop, rewrite or IDNA-map: no whitespace or
    // control characters anywhere, no non-ASCII, no backslash. Real links are plain ASCII.
    if !s.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return None;
    }
    let (text, raw) = split_link(s)?;
    let form = classify(&raw)?;
    let url = whatwg::parse(&text)?;
    if !url_agrees(&url, &raw, form) {
        return None;
    }
    match form {
        Form::Chat => chat_code(raw.path),
        Form::Web if is_accept_path(raw.path) => query_code(&url, raw.query?),
        Form::App if matches!(raw.path, "" | "/") => query_code(&url, raw.query?),
        Form::Web | Form::App => None,
    }
}

/// Splits `s` into its raw parts, and returns the text to hand to the URL parser (the
/// schemeless form gets `https://` in front, which is what a browser would do with it).
fn split_link(s: &str) -> Option<(Cow<'_, str>, RawLink<'_>)> {
    let schemes = [
        ("https", "https://"),
        ("http", "http://"),
        ("whatsapp", "whatsapp://"),
    ];
    let found = schemes
        .iter()
        .find_map(|&(name, prefix)| strip_prefix_ci(s, prefix).map(|rest| (name, rest)));
    let (scheme, rest, text) = match found {
        Some((name, rest)) => (name, rest, Cow::Borrowed(s)),
        // Only chat links may omit the scheme.
        None if strip_prefix_ci(s, CHAT_HOST).is_some() => {
            ("https", s, Cow::Owned(format!("https://{s}")))
        }
        None => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let before_fragment = tail.split_once('#').map_or(tail, |(head, _)| head);
    let (path, query) = match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (before_fragment, None),
    };
    let raw = RawLink {
        scheme,
        authority,
        path,
        query,
    };
    Some((text, raw))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// The form a link claims, from its raw scheme and authority. The authority must be the
/// bare host: this alone rules out userinfo, ports, trailing dots and encoded hosts.
fn classify(raw: &RawLink<'_>) -> Option<Form> {
    let host_is = |host: &str| raw.authority.eq_ignore_ascii_case(host);
    match raw.scheme {
        "https" | "http" if host_is(CHAT_HOST) => Some(Form::Chat),
        // The contract names https only for web links.
        "https" if host_is(WEB_HOST) => Some(Form::Web),
        "whatsapp" if host_is(APP_HOST) => Some(Form::App),
        _ => None,
    }
}

/// True when the URL parser read the same scheme, host and path as the raw split.
fn url_agrees(url: &Parsed, raw: &RawLink<'_>, form: Form) -> bool {
    let expected_host = match form {
        Form::Chat => CHAT_HOST,
        Form::Web => WEB_HOST,
        Form::App => APP_HOST,
    };
    url.scheme == raw.scheme
        && url.username.is_empty()
        && url.password.is_none()
        // `port` is None for a default port such as :443, hence the raw check in `classify`.
        && url.port.is_none()
        && matches!(
            &url.host,
            Some(whatwg::Host::Domain(host)) if host.eq_ignore_ascii_case(expected_host)
        )
        // Differs when the parser resolved dot segments or re-encoded a character. The path
        // grammars below already refuse such paths; this keeps the two views honest anyway.
        && url.path == raw.path
}

/// Form 2's path: `/CODE`, `/CODE/`, `/invite/CODE` or `/invite/CODE/`.
fn chat_code(path: &str) -> Option<InviteCode> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    InviteCode::from_candidate(rest.strip_prefix("invite/").unwrap_or(rest))
}

/// Form 3's path: its last segment is exactly `accept`, optionally followed by `/`; any
/// segments before it are plain words (the `…` of the contract).
fn is_accept_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    let Some(prefix) = path.strip_suffix("/accept") else {
        return false;
    };
    prefix.is_empty() || {
        let mut segments = prefix.split('/');
        segments.next() == Some("") && segments.all(is_plain_segment)
    }
}

fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~'))
}

/// The one `code` parameter of a query, for forms 3 and 4.
///
/// The raw `code=` pairs and the pairs the parsed query decodes to must be the same list, so
/// that `c%6Fde=…`, `code=%41…` or `code=A+B` can't smuggle a code past either view. Two or
/// more `code` parameters are ambiguous (which would WhatsApp use?), so they are malformed.
fn query_code(url: &Parsed, raw_query: &str) -> Option<InviteCode> {
    let raw: Vec<&str> = raw_query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("code="))
        .collect();
    let query = url.query.as_deref().unwrap_or_default();
    let decoded: Vec<Cow<'_, str>> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == "code")
        .map(|(_, value)| value)
        .collect();
    match (raw.as_slice(), decoded.as_slice()) {
        ([raw_code], [decoded_code]) if raw_code == decoded_code => {
            InviteCode::from_candidate(raw_code)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODE: &str = "Fh4oBZ2d6Mt3XyAVbL6bUE";

    fn code_of(input: &str) -> Option<String> {
        parse_invite(input).ok().map(|c| c.as_str().to_owned())
    }

    #[test]
    fn accepts_every_form() {
        let c = CODE;
        let cases: Vec<String> = vec![
            // 1. bare code
            c.into(),
            format!("{c}/"),
            format!("  {c}  "),
            format!("\n\t{c}/\r\n"),
            "abcdefghijklmnop".into(),                 // 16, the shortest
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345".into(), // 32, the longest
            format!("\u{a0}{c}\u{2003}"),              // Unicode whitespace is trimmed too
            // 2. chat links
            format!("https://chat.whatsapp.com/{c}"),
            format!("https://chat.whatsapp.com/{c}?mode=ems_copy_t"),
            format!("https://chat.whatsapp.com/{c}/"),
            format!("https://chat.whatsapp.com/{c}/?mode=r_c"),
            format!("https://chat.whatsapp.com/{c}#section"),
            format!("https://chat.whatsapp.com/{c}?a=1&b=%20x#frag?x"),
            format!("https://chat.whatsapp.com/{c}?"),
            format!("https://chat.whatsapp.com/{c}#"),
            format!("https://chat.whatsapp.com/invite/{c}"),
            format!("https://chat.whatsapp.com/invite/{c}/"),
            format!("http://chat.whatsapp.com/{c}"),
            format!("http://chat.whatsapp.com/invite/{c}/?mode=ems_copy_t"),
            format!("HTTPS://CHAT.WHATSAPP.COM/{c}"),
            format!("Https://Chat.WhatsApp.Com/invite/{c}"),
            format!("chat.whatsapp.com/{c}"),
            format!("chat.WhatsApp.com/invite/{c}/"),
            format!("CHAT.WHATSAPP.COM/{c}?mode=ems_copy_t#x"),
            format!("  https://chat.whatsapp.com/{c}?mode=ems_copy_t \n"),
            // 3. web links
            format!("https://web.whatsapp.com/accept?code={c}"),
            format!("https://web.whatsapp.com/accept/?code={c}"),
            format!("https://web.whatsapp.com/accept?x=1&code={c}&y=2"),
            format!("https://web.whatsapp.com/accept?x=%20&code={c}#frag"),
            format!("https://web.whatsapp.com/es/accept?code={c}"),
            format!("https://WEB.WhatsApp.com/accept?code={c}"),
            format!("HTTPS://web.whatsapp.com/accept?code={c}"),
            // 4. app links
            format!("whatsapp://chat?code={c}"),
            format!("whatsapp://chat/?code={c}"),
            format!("whatsapp://chat?foo=bar&code={c}"),
            format!("whatsapp://chat?code={c}&foo=bar#x"),
            format!("WhatsApp://CHAT?code={c}"),
        ];
        for input in &cases {
            let want = if input.contains(c) {
                c
            } else {
                input.trim().trim_end_matches('/')
            };
            assert_eq!(code_of(input).as_deref(), Some(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let c = CODE;
        let cases: Vec<String> = vec![
            // empty and near-empty
            "".into(),
            "   ".into(),
            "/".into(),
            "chat.whatsapp.com".into(),
            "chat.whatsapp.com/".into(),
            "https://chat.whatsapp.com".into(),
            "https://chat.whatsapp.com/".into(),
            "https://chat.whatsapp.com/invite/".into(),
            "https://web.whatsapp.com/accept?code=".into(),
            "https://web.whatsapp.com/accept".into(),
            "whatsapp://chat?code=".into(),
            "whatsapp://chat".into(),
            // wrong length
            "abcdefghijklmno".into(),                   // 15
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456".into(), // 33
            "https://chat.whatsapp.com/abcdefghijklmno".into(),
            "https://web.whatsapp.com/accept?code=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456".into(),
            // other alphabets
            "Fh4oBZ2d6Mt3XyAVbL6b-E".into(),
            "Fh4oBZ2d6Mt3XyAVbL6b_E".into(),
            "Fh4oBZ2d6Mt3XyAVbL6bÜE".into(),
            "Fh4oBZ2d6Mt3XyAVbL6b\u{ff11}E".into(), // fullwidth digit
            "Fh4oBZ2d6Mt3 XyAVbL6bUE".into(),
            "Fh4oBZ2d6Mt3\u{200b}XyAVbL6bUE".into(), // zero-width space
            format!("https://chat.whatsapp.com/{c}\u{0301}"),
            format!("whatsapp://chat?code={c}-"),
            format!("whatsapp://chat?code={c}+"),
            // bare code with more than one trailing slash, or other decoration
            format!("{c}//"),
            format!("/{c}"),
            format!("{c}?mode=ems_copy_t"),
            format!("{c}#x"),
            format!("\"{c}\""),
            format!("<{c}>"),
            // other hosts and look-alikes
            format!("https://chat.whatsapp.com.evil.example/{c}"),
            format!("chat.whatsapp.com.evil.example/{c}"),
            format!("https://evilchat.whatsapp.com/{c}"),
            format!("https://www.chat.whatsapp.com/{c}"),
            format!("https://whatsapp.com/{c}"),
            format!("https://chat.whatsapp.co/{c}"),
            format!("https://chat.whatsapp.com./{c}"),
            format!("chat.whatsapp.com./{c}"),
            format!("https://evil.example/chat.whatsapp.com/{c}"),
            format!("https://evil.example/{c}"),
            format!("https://evil.example/accept?code={c}"),
            format!("https://chаt.whatsapp.com/{c}"), // Cyrillic a, IDNA would map it
            format!("https://chat\u{ff0e}whatsapp.com/{c}"), // fullwidth full stop
            format!("https://xn--chat-xxx.whatsapp.com/{c}"),
            format!("https://[::1]/{c}"),
            format!("https://127.0.0.1/{c}"),
            // schemes
            format!("ftp://chat.whatsapp.com/{c}"),
            format!("javascript://chat.whatsapp.com/{c}"),
            format!("file://chat.whatsapp.com/{c}"),
            format!("//chat.whatsapp.com/{c}"),
            format!("https:/chat.whatsapp.com/{c}"),
            format!("https:///chat.whatsapp.com/{c}"),
            format!("https:chat.whatsapp.com/{c}"),
            format!("https ://chat.whatsapp.com/{c}"),
            format!("http://web.whatsapp.com/accept?code={c}"),
            format!("web.whatsapp.com/accept?code={c}"),
            format!("whatsapp:chat?code={c}"),
            format!("whatsapp:///chat?code={c}"),
            format!("whatsapps://chat?code={c}"),
            // backslashes, which `url` would read as `/`
            format!("https:\\\\chat.whatsapp.com\\{c}"),
            format!("https://chat.whatsapp.com\\{c}"),
            format!("https://chat.whatsapp.com\\@evil.example/{c}"),
            format!("https://evil.example\\@chat.whatsapp.com/{c}"),
            // tabs and newlines inside, which `url` would drop
            format!("https://chat.whats\tapp.com/{c}"),
            format!("https://chat.whatsapp.com/{}\n{}", &c[..8], &c[8..]),
            format!("https://chat.whatsapp.com/{c}?mode=ems\tcopy"),
            format!("https://web.whatsapp.com/accept?co\tde={c}"),
            // userinfo
            format!("https://user@chat.whatsapp.com/{c}"),
            format!("https://user:pw@chat.whatsapp.com/{c}"),
            format!("https://@chat.whatsapp.com/{c}"),
            format!("https://:@chat.whatsapp.com/{c}"),
            format!("https://chat.whatsapp.com@evil.example/{c}"),
            format!("chat.whatsapp.com@evil.example/{c}"),
            format!("https://user@web.whatsapp.com/accept?code={c}"),
            format!("whatsapp://user@chat?code={c}"),
            // ports, including the default ones `url` would erase
            format!("https://chat.whatsapp.com:443/{c}"),
            format!("http://chat.whatsapp.com:80/{c}"),
            format!("https://chat.whatsapp.com:/{c}"),
            format!("https://chat.whatsapp.com:8443/{c}"),
            format!("chat.whatsapp.com:443/{c}"),
            format!("https://web.whatsapp.com:443/accept?code={c}"),
            format!("whatsapp://chat:1/?code={c}"),
            // extra or odd path segments
            format!("https://chat.whatsapp.com/{c}/extra"),
            format!("https://chat.whatsapp.com/invite/{c}/extra"),
            format!("https://chat.whatsapp.com/foo/{c}"),
            format!("https://chat.whatsapp.com/invite/invite/{c}"),
            format!("https://chat.whatsapp.com//{c}"),
            format!("https://chat.whatsapp.com/{c}//"),
            format!("https://chat.whatsapp.com/invite//{c}"),
            format!("https://chat.whatsapp.com/Invite/{c}"),
            format!("https://chat.whatsapp.com/accept?code={c}"),
            format!("https://chat.whatsapp.com?code={c}"),
            format!("https://chat.whatsapp.com#/{c}"),
            format!("https://chat.whatsapp.com/./{c}"),
            format!("https://chat.whatsapp.com/x/../{c}"),
            format!("https://chat.whatsapp.com/{c}/."),
            format!("https://web.whatsapp.com/{c}"),
            format!("https://web.whatsapp.com/?code={c}"),
            format!("https://web.whatsapp.com/accepted?code={c}"),
            format!("https://web.whatsapp.com/xaccept?code={c}"),
            format!("https://web.whatsapp.com/Accept?code={c}"),
            format!("https://web.whatsapp.com/accept/x?code={c}"),
            format!("https://web.whatsapp.com/accept//?code={c}"),
            format!("https://web.whatsapp.com//accept?code={c}"),
            format!("https://web.whatsapp.com/./accept?code={c}"),
            format!("https://web.whatsapp.com/x/../accept?code={c}"),
            format!("https://web.whatsapp.com/accept/{c}"),
            format!("whatsapp://chat/{c}"),
            format!("whatsapp://chat//?code={c}"),
            format!("whatsapp://chat/x?code={c}"),
            format!("whatsapp://send?code={c}"),
            format!("whatsapp://chat.whatsapp.com?code={c}"),
            // percent-encoded tricks
            format!("https://chat.whatsapp.com/%46{}", &c[1..]),
            format!("https://chat.whatsapp.com/invite%2F{c}"),
            format!("https://chat.whatsapp.com/{c}%2F"),
            format!("https://chat%2Ewhatsapp.com/{c}"),
            format!("https://%63hat.whatsapp.com/{c}"),
            format!("https://chat.whatsapp.com/%2e/{c}"),
            format!("https://chat.whatsapp.com/x/%2e%2e/{c}"),
            format!("https://web.whatsapp.com/accept?code=%46{}", &c[1..]),
            format!("https://web.whatsapp.com/accept?c%6Fde={c}"),
            format!("https://web.whatsapp.com/acc%65pt?code={c}"),
            format!("https://web.whatsapp.com/accept?code={c}%00"),
            format!("whatsapp://ch%61t?code={c}"),
            format!("whatsapp://chat?code={c}%26code%3D{c}"),
            // the code parameter: missing, empty, duplicated, misnamed, or only in the fragment
            "https://web.whatsapp.com/accept?mode=x".into(),
            "https://web.whatsapp.com/accept?".into(),
            format!("https://web.whatsapp.com/accept?code={c}&code={c}"),
            format!("https://web.whatsapp.com/accept?code={c}&code=abcdefghijklmnop"),
            format!("https://web.whatsapp.com/accept?code=&code={c}"),
            format!("https://web.whatsapp.com/accept?code&code={c}"),
            format!("https://web.whatsapp.com/accept?CODE={c}"),
            format!("https://web.whatsapp.com/accept?xcode={c}"),
            format!("https://web.whatsapp.com/accept#code={c}"),
            format!("https://web.whatsapp.com/accept?x=1#&code={c}"),
            format!("whatsapp://chat?code={c}&code={c}"),
            format!("whatsapp://chat#code={c}"),
            format!("whatsapp://chat?code={c}={c}"),
            format!("whatsapp://chat?code={c};x=1"),
            // text around a link
            format!("Join my group: https://chat.whatsapp.com/{c}"),
            format!("https://chat.whatsapp.com/{c} please"),
            format!("https://chat.whatsapp.com/{c} https://chat.whatsapp.com/{c}"),
            // non-ASCII in an otherwise ignored part is still malformed (real links are ASCII)
            format!("https://chat.whatsapp.com/{c}?x=é"),
            format!("https://chat.whatsapp.com/{c}#\u{202e}"),
        ];
        for input in &cases {
            assert_eq!(code_of(input), None, "input {input:?}");
        }
    }

    #[test]
    fn length_limit_counts_raw_bytes() {
        let base = format!("https://chat.whatsapp.com/{CODE}?x=");
        let at_limit = format!("{base}{}", "a".repeat(MAX_INPUT_BYTES - base.len()));
        assert_eq!(at_limit.len(), MAX_INPUT_BYTES);
        assert_eq!(code_of(&at_limit).as_deref(), Some(CODE));
        assert_eq!(code_of(&format!("{at_limit}a")), None);

        // Whitespace counts: the limit applies before trimming.
        let padded = format!("{CODE}{}", " ".repeat(MAX_INPUT_BYTES - CODE.len()));
        assert_eq!(code_of(&padded).as_deref(), Some(CODE));
        assert_eq!(code_of(&format!("{padded} ")), None);
        assert_eq!(code_of(&"a".repeat(100_000)), None);
    }

    #[test]
    fn debug_and_redaction_never_show_the_code() {
        let code = parse_invite(CODE).unwrap();
        assert_eq!(code.as_str(), CODE);
        assert_eq!(code.redacted(), "Fh4o…");
        let debug = format!("{code:?}");
        assert_eq!(debug, "InviteCode(\"Fh4o…\")");
        assert!(!debug.contains(&CODE[..5]));
        assert_eq!(
            format!("{:?}", Some(code.clone())),
            "Some(InviteCode(\"Fh4o…\"))"
        );
    }

    #[test]
    fn error_message_is_the_contract_sentence() {
        assert_eq!(
            InviteMalformed.to_string(),
            "not a WhatsApp group invite link or code"
        );
        assert_eq!(parse_invite("nope"), Err(InviteMalformed));
    }

    #[test]
    fn case_is_kept() {
        let lower = parse_invite("abcdefghijklmnopqrstuv").unwrap();
        let upper = parse_invite("ABCDEFGHIJKLMNOPQRSTUV").unwrap();
        assert_ne!(lower, upper);
        assert_eq!(upper.as_str(), "ABCDEFGHIJKLMNOPQRSTUV");
    }

    // ---- properties ----

    /// Independent statement of the code alphabet and length.
    fn valid_code_text(s: &str) -> bool {
        let n = s.chars().count();
        (16..=32).contains(&n) && s.chars().all(|ch| ch.is_ascii_alphanumeric())
    }

    fn code_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{16,32}"
    }

    /// Every accepted template, wrapping `c`, with the host in the letter case of `mask`.
    fn templates(c: &str, mask: &[bool]) -> Vec<String> {
        let case = |s: &str| -> String {
            s.chars()
                .zip(mask.iter().cycle())
                .map(|(ch, &up)| if up { ch.to_ascii_uppercase() } else { ch })
                .collect()
        };
        let chat = case(CHAT_HOST);
        let web = case(WEB_HOST);
        let app = case(APP_HOST);
        let mut out = vec![c.to_owned(), format!("{c}/"), format!(" \t{c}\n")];
        for scheme in ["https://", "http://", ""] {
            for prefix in ["", "invite/"] {
                for slash in ["", "/"] {
                    for tail in ["", "?mode=ems_copy_t", "#x", "?a=b&code=zz#f"] {
                        out.push(format!("{scheme}{chat}/{prefix}{c}{slash}{tail}"));
                    }
                }
            }
        }
        for slash in ["", "/"] {
            out.push(format!("https://{web}/accept{slash}?code={c}"));
            out.push(format!("https://{web}/accept{slash}?a=1&code={c}&b=2#f"));
            out.push(format!("whatsapp://{app}{slash}?code={c}"));
            out.push(format!("whatsapp://{app}{slash}?a=%20&code={c}#f"));
        }
        out
    }

    /// Pieces of URLs, valid and hostile, to glue together.
    fn url_fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("https://".to_owned()),
            Just("http://".to_owned()),
            Just("whatsapp://".to_owned()),
            Just("HTTPS://".to_owned()),
            Just("chat.whatsapp.com".to_owned()),
            Just("CHAT.WhatsApp.com".to_owned()),
            Just("web.whatsapp.com".to_owned()),
            Just("chat".to_owned()),
            Just(".evil.example".to_owned()),
            Just("/".to_owned()),
            Just("//".to_owned()),
            Just("\\".to_owned()),
            Just("invite/".to_owned()),
            Just("accept".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            Just("&".to_owned()),
            Just("code=".to_owned()),
            Just("mode=ems_copy_t".to_owned()),
            Just("@".to_owned()),
            Just(":443".to_owned()),
            Just(":".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("%2F".to_owned()),
            Just("%2e".to_owned()),
            Just("%".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("\n".to_owned()),
            Just("\u{ff0e}".to_owned()),
            Just("а".to_owned()),
            code_strategy(),
            "[A-Za-z0-9]{0,40}",
            any::<char>().prop_map(String::from),
        ]
    }

    fn url_ish() -> impl Strategy<Value = String> {
        proptest::collection::vec(url_fragment(), 0..12).prop_map(|parts| parts.concat())
    }

    /// A valid template with one character inserted, replaced or removed somewhere.
    fn near_miss() -> impl Strategy<Value = String> {
        (
            code_strategy(),
            proptest::collection::vec(any::<bool>(), 1..20),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['/', '\\', '%', '@', ':', '.', '?', '#', '&', '=', ' ']),
            ],
            0..3u8,
        )
            .prop_map(|(c, mask, which, at, ch, op)| {
                let all = templates(&c, &mask);
                let mut chars: Vec<char> = which.get(&all).chars().collect();
                let i = at.index(chars.len() + 1);
                match op {
                    0 => chars.insert(i, ch),
                    1 if i < chars.len() => chars[i] = ch,
                    _ if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ => chars.push(ch),
                }
                chars.into_iter().collect()
            })
    }

    fn any_input() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), url_ish(), near_miss()]
    }

    /// The invariants every accepted input must keep.
    fn check_accepted(input: &str) -> Result<(), TestCaseError> {
        let Ok(code) = parse_invite(input) else {
            return Ok(());
        };
        let code = code.as_str();
        prop_assert!(valid_code_text(code), "bad code {code:?} from {input:?}");
        // No decoding ever produces a code: it is in the input verbatim.
        prop_assert!(input.contains(code), "{code:?} not in {input:?}");
        prop_assert!(input.len() <= MAX_INPUT_BYTES);
        if let Ok(url) = Url::parse(input.trim()) {
            if let Some(host) = url.host_str() {
                let ok = host.eq_ignore_ascii_case(CHAT_HOST)
                    || host.eq_ignore_ascii_case(WEB_HOST)
                    || (url.scheme() == "whatsapp" && host.eq_ignore_ascii_case(APP_HOST));
                prop_assert!(ok, "host {host:?} accepted in {input:?}");
                prop_assert!(url.port().is_none() && url.username().is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_and_accepted_inputs_are_sound(input in any_input()) {
            check_accepted(&input)?;
        }

        #[test]
        fn every_template_round_trips(
            c in code_strategy(),
            mask in proptest::collection::vec(any::<bool>(), 1..20),
        ) {
            for input in templates(&c, &mask) {
                let parsed = parse_invite(&input);
                prop_assert_eq!(
                    parsed.as_ref().map(InviteCode::as_str),
                    Ok(c.as_str()),
                    "input {:?}",
                    input
                );
            }
        }

        #[test]
        fn bare_strings_accepted_exactly_when_codes(s in "[A-Za-z0-9_-]{0,40}/{0,2}") {
            let body = s.strip_suffix('/').unwrap_or(&s);
            prop_assert_eq!(parse_invite(&s).is_ok(), valid_code_text(body));
        }
    }
}
