//! Absolute URLs, parsed by the WHATWG URL Standard: the one place where the core reaches
//! the runtime in the wasm build.
//!
//! The wasm is held to a size budget (340 KB gzip), and the `url` crate's parser is about
//! 12 KB gzip of it, while the Workers runtime already carries the same algorithm as its
//! `URL` class. So [`parse`] has two implementations of one contract:
//! - natively (`cargo test`, clippy) through the `url` crate, a WHATWG parser;
//! - in the wasm through `web_sys::Url`, the runtime's `URL`.
//!
//! Both give a [`Parsed`] with what joingate's checks read. Where the two could differ,
//! this module decides, so that both builds answer alike:
//! - **Host names must be ASCII.** The `url` crate here carries no IDNA tables
//!   (`idna_adapter` 1.0, see Cargo.toml) and refuses a non-ASCII host, where `URL` would
//!   map it to punycode; [`parse`] refuses such input in both builds (a non-ASCII
//!   character, or a percent-escape of one, in the text's host part). A host already in
//!   punycode (`xn--…`) is ASCII and accepted by both, with one residual difference: a
//!   label that is not valid punycode (`xn--abc`) is refused by `URL` but kept by the
//!   `url` crate (version 2.5.8).
//! - **Empty query and fragment.** `URL.search` and `URL.hash` are `""` both without a `?`/
//!   `#` and with an empty one; the `url` crate tells `Some("")` from `None`. A WHATWG parse
//!   of an absolute URL starts a query at the first `?` before any `#`, and a fragment at
//!   the first `#`, so the wasm build reads which one it is from the text.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A URL's host, typed as the WHATWG parser types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A domain (lowercased for special schemes) or, for other schemes, an opaque host.
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

/// What joingate reads of an absolute URL. All text is as the WHATWG serializer gives it
/// (percent-encoded where it encodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The whole URL, serialized.
    pub href: String,
    /// Lowercased, without the `:`.
    pub scheme: String,
    /// Empty when there is none.
    pub username: String,
    /// `None` when there is none or it is empty (the serializer drops an empty one).
    pub password: Option<String>,
    /// `None` for a URL without a host (or with an empty one).
    pub host: Option<Host>,
    /// An explicit port; `None` for none and for the scheme's default port.
    pub port: Option<u16>,
    pub path: String,
    /// Without the `?`; `Some("")` for a bare `?`.
    pub query: Option<String>,
    /// Without the `#`; `Some("")` for a bare `#`.
    pub fragment: Option<String>,
}

/// Parses `text` as an absolute URL (no base). `None` when it is not one, or when its host
/// is not ASCII (module doc).
pub fn parse(text: &str) -> Option<Parsed> {
    if !host_is_ascii(text) {
        return None;
    }
    parse_whatwg(text)
}

#[cfg(not(target_arch = "wasm32"))]
fn parse_whatwg(text: &str) -> Option<Parsed> {
    let url = url::Url::parse(text).ok()?;
    let host = url.host().and_then(|host| match host {
        url::Host::Domain("") => None,
        url::Host::Domain(name) => Some(Host::Domain(name.to_string())),
        url::Host::Ipv4(ip) => Some(Host::Ipv4(ip)),
        url::Host::Ipv6(ip) => Some(Host::Ipv6(ip)),
    });
    Some(Parsed {
        href: url.as_str().to_string(),
        scheme: url.scheme().to_string(),
        username: url.username().to_string(),
        password: url.password().map(str::to_string),
        host,
        port: url.port(),
        path: url.path().to_string(),
        query: url.query().map(str::to_string),
        fragment: url.fragment().map(str::to_string),
    })
}

#[cfg(target_arch = "wasm32")]
fn parse_whatwg(text: &str) -> Option<Parsed> {
    let url = web_sys::Url::new(text).ok()?;
    let protocol = url.protocol();
    let scheme = protocol.strip_suffix(':').unwrap_or(&protocol).to_string();
    let host = host_of(&scheme, &url.hostname());
    let port = match url.port().as_str() {
        "" => None,
        port => Some(port.parse().ok()?),
    };
    let password = Some(url.password()).filter(|password| !password.is_empty());
    let before_fragment = text.split_once('#').map_or(text, |(head, _)| head);
    let query = match url.search() {
        search if search.is_empty() => before_fragment.contains('?').then(String::new),
        search => Some(search.strip_prefix('?').unwrap_or(&search).to_string()),
    };
    let fragment = match url.hash() {
        hash if hash.is_empty() => text.contains('#').then(String::new),
        hash => Some(hash.strip_prefix('#').unwrap_or(&hash).to_string()),
    };
    Some(Parsed {
        href: url.href(),
        scheme,
        username: url.username(),
        password,
        host,
        port,
        path: url.pathname(),
        query,
        fragment,
    })
}

/// The typed host of a `URL.hostname` (already normalised by the WHATWG parser: an IPv4
/// address of a special scheme is in dotted decimal, an IPv6 one in brackets).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn host_of(scheme: &str, hostname: &str) -> Option<Host> {
    if hostname.is_empty() {
        return None;
    }
    if let Some(ip) = hostname
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return ipv6(ip).map(Host::Ipv6);
    }
    // Other schemes have opaque hosts, which are never IPv4 addresses.
    if is_special(scheme) {
        if let Some(ip) = ipv4(hostname) {
            return Some(Host::Ipv4(ip));
        }
    }
    Some(Host::Domain(hostname.to_string()))
}

/// A dotted-decimal IPv4 address as the WHATWG serializer writes one (four numbers 0–255,
/// no leading zeros). Read by hand: the standard library's address parser is about 1 KB
/// of the wasm's gzip.
fn ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        let canonical = part.len() == 1 || !part.starts_with('0');
        if part.is_empty() || part.len() > 3 || !canonical {
            return None;
        }
        let mut value = 0u32;
        for digit in part.chars() {
            value = value * 10 + digit.to_digit(10)?;
        }
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// An IPv6 address as the WHATWG serializer writes one (groups of 1–4 hex digits, at most
/// one `::`, no embedded IPv4).
fn ipv6(text: &str) -> Option<Ipv6Addr> {
    let (head, tail) = match text.split_once("::") {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    };
    // The groups of one side into `segments`, from the front or (`from_end`) the back.
    let read = |part: &str, segments: &mut [u16; 8], from_end: bool| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let count = part.split(':').count();
        for (index, group) in part.split(':').enumerate() {
            if !(1..=4).contains(&group.len()) {
                return None;
            }
            let mut value = 0u32;
            for digit in group.chars() {
                value = value << 4 | digit.to_digit(16)?;
            }
            let at = if from_end {
                8usize.checked_sub(count)? + index
            } else {
                index
            };
            *segments.get_mut(at)? = value as u16;
        }
        Some(count)
    };
    let mut segments = [0u16; 8];
    let front = read(head, &mut segments, false)?;
    let back = match tail {
        Some(tail) => read(tail, &mut segments, true)?,
        None => 0,
    };
    // `::` stands for at least one group of zeros.
    let complete = match tail {
        Some(_) => front + back <= 7,
        None => front == 8,
    };
    complete.then_some(Ipv6Addr::from(segments))
}

fn is_special(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp" | "file")
}

/// False when the host part of `text` (after the scheme and any slashes, up to the path,
/// query or fragment, after any userinfo) holds a non-ASCII character or a percent-escape
/// of a non-ASCII byte. For special schemes this is the part the WHATWG parser reads as the
/// host; for others it may take in more, which only matters for non-ASCII text there.
fn host_is_ascii(text: &str) -> bool {
    let Some((_, rest)) = text.split_once(':') else {
        return true;
    };
    let rest = rest.trim_start_matches(['/', '\\']);
    let authority = rest
        .find(['/', '\\', '?', '#'])
        .map_or(rest, |end| &rest[..end]);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host.is_ascii() && !escapes_non_ascii(host)
}

/// True when `text` holds `%XX` with `XX` ≥ 0x80.
fn escapes_non_ascii(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(w[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            && w[2].is_ascii_hexdigit()
    })
}

/// The path of an absolute URL as the runtime gives a request's (`https://host/p?q#f` →
/// `/p`): from the first `/` after `://`, up to `?` or `#`; `/` when there is none.
pub fn path_of(href: &str) -> &str {
    let after_scheme = href.split_once("://").map_or(href, |(_, rest)| rest);
    let end = after_scheme.find(['?', '#']).unwrap_or(after_scheme.len());
    let before_query = &after_scheme[..end];
    match before_query.find('/') {
        Some(start) => &before_query[start..],
        None => "/",
    }
}

/// The origin of an absolute `http(s)` URL as the runtime gives a request's: its
/// `scheme://host[:port]`, without any userinfo. Empty when `href` has no `://`.
pub fn origin_of(href: &str) -> String {
    let Some((scheme, rest)) = href.split_once("://") else {
        return String::new();
    };
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_as_whatwg_reads_them() {
        let url = parse("HTTPS://u:p@WAHA.Example.com:8443/a/./b/../c?x=1#f").unwrap();
        assert_eq!(url.href, "https://u:p@waha.example.com:8443/a/c?x=1#f");
        assert_eq!(url.scheme, "https");
        assert_eq!(url.username, "u");
        assert_eq!(url.password.as_deref(), Some("p"));
        assert_eq!(url.host, Some(Host::Domain("waha.example.com".into())));
        assert_eq!(url.port, Some(8443));
        assert_eq!(url.path, "/a/c");
        assert_eq!(url.query.as_deref(), Some("x=1"));
        assert_eq!(url.fragment.as_deref(), Some("f"));

        let url = parse("https://a.example:443").unwrap();
        assert_eq!((url.port, url.path.as_str()), (None, "/"));
        assert_eq!((url.query, url.fragment), (None, None));
        let url = parse("https://a.example/?#").unwrap();
        assert_eq!(url.query.as_deref(), Some(""));
        assert_eq!(url.fragment.as_deref(), Some(""));
        let url = parse("https://a.example/#?").unwrap();
        assert_eq!((url.query, url.fragment.as_deref()), (None, Some("?")));
        assert_eq!(parse("https://u:@a.example").unwrap().password, None);

        let url = parse("whatsapp://Chat?code=x").unwrap();
        assert_eq!(url.host, Some(Host::Domain("Chat".into())));
        assert_eq!(
            (url.path.as_str(), url.query.as_deref()),
            ("", Some("code=x"))
        );
        assert_eq!(parse("whatsapp:x").unwrap().host, None);
        for bad in [
            "",
            "/relative",
            "a.example",
            "https://",
            "https://a b",
            "http://[::1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hosts_are_typed() {
        let host = |text: &str| parse(text).and_then(|url| url.host);
        assert_eq!(
            host("http://127.0.0.1:3000"),
            Some(Host::Ipv4([127, 0, 0, 1].into()))
        );
        // The WHATWG IPv4 forms, normalised.
        assert_eq!(
            host("http://0x7f.1"),
            Some(Host::Ipv4([127, 0, 0, 1].into()))
        );
        assert_eq!(
            host("http://[::1]:8080"),
            Some(Host::Ipv6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            host("http://localhost"),
            Some(Host::Domain("localhost".into()))
        );
        assert_eq!(host("foo://1.2.3.4"), Some(Host::Domain("1.2.3.4".into())));
        assert_eq!(host("foo://[::1]"), Some(Host::Ipv6(Ipv6Addr::LOCALHOST)));
        assert_eq!(
            host_of("https", "1.2.3.4"),
            Some(Host::Ipv4([1, 2, 3, 4].into()))
        );
        assert_eq!(
            host_of("foo", "1.2.3.4"),
            Some(Host::Domain("1.2.3.4".into()))
        );
        assert_eq!(
            host_of("https", "[::1]"),
            Some(Host::Ipv6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(host_of("https", ""), None);
    }

    /// `segments` as the WHATWG serializer writes them: lower-case hex, the first longest
    /// run of two or more zero groups as `::`.
    fn whatwg_ipv6(segments: [u16; 8]) -> String {
        let (mut best, mut run) = ((0, 0), (0, 0));
        for (index, segment) in segments.iter().enumerate() {
            if *segment == 0 {
                run = if run.1 == 0 {
                    (index, 1)
                } else {
                    (run.0, run.1 + 1)
                };
                if run.1 > best.1 {
                    best = run;
                }
            } else {
                run = (0, 0);
            }
        }
        let hex = |part: &[u16]| {
            part.iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        if best.1 < 2 {
            return hex(&segments);
        }
        format!(
            "{}::{}",
            hex(&segments[..best.0]),
            hex(&segments[best.0 + best.1..])
        )
    }

    #[test]
    fn addresses_read_as_the_standard_library_reads_them() {
        for (text, expected) in [
            ("0.0.0.0", Some([0, 0, 0, 0])),
            ("127.0.0.1", Some([127, 0, 0, 1])),
            ("255.255.255.255", Some([255, 255, 255, 255])),
            ("256.0.0.1", None),
            ("01.2.3.4", None),
            ("1.2.3", None),
            ("1.2.3.4.5", None),
            ("1..3.4", None),
            ("1.2.3.+4", None),
            ("a.b.c.d", None),
            ("", None),
        ] {
            assert_eq!(ipv4(text), expected.map(Ipv4Addr::from), "{text}");
            assert_eq!(ipv4(text), text.parse().ok(), "{text}");
        }
        for (text, ok) in [
            ("::", true),
            ("::1", true),
            ("1::", true),
            ("1:2:3:4:5:6:7:8", true),
            ("1::8", true),
            ("fe80::1:2", true),
            ("1:2:3:4:5:6:7::", true),
            ("1:2:3:4:5:6:7:8:9", false),
            ("1:2:3:4:5:6:7", false),
            ("1:2:3:4:5:6:7:8::", false),
            ("1::2::3", false),
            (":1::", false),
            ("12345::", false),
            ("g::", false),
            ("::ffff:1.2.3.4", false),
            ("", false),
        ] {
            assert_eq!(ipv6(text).is_some(), ok, "{text}");
            if ok {
                assert_eq!(ipv6(text), text.parse().ok(), "{text}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_serialized_address_reads_back(v4 in proptest::prelude::any::<u32>(), v6 in proptest::prelude::any::<[u16; 8]>(), zeros in 0usize..8, at in 0usize..8) {
            let ip = Ipv4Addr::from(v4);
            proptest::prop_assert_eq!(ipv4(&ip.to_string()), Some(ip));
            let mut segments = v6;
            for segment in segments.iter_mut().skip(at).take(zeros) {
                *segment = 0;
            }
            let text = whatwg_ipv6(segments);
            proptest::prop_assert_eq!(ipv6(&text), Some(Ipv6Addr::from(segments)), "{}", text);
        }
    }

    #[test]
    fn non_ascii_hosts_are_refused() {
        for bad in [
            "https://wähä.example.com",
            "https://w%C3%A4ha.example.com/",
            "https://ｅxample.com",
            "https://u@wähä.example.com/x",
            "https:wähä.example.com",
            "https://example.com%C2%AD",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        // Elsewhere non-ASCII is percent-encoded, as WHATWG does.
        let url = parse("https://ä@a.example/ä?ä#ä").unwrap();
        assert_eq!(url.href, "https://%C3%A4@a.example/%C3%A4?%C3%A4#%C3%A4");
        assert_eq!(
            parse("https://a%41.example").unwrap().href,
            "https://aa.example/"
        );
        // Punycode is ASCII: kept as it is.
        let url = parse("https://xn--wh-via.example.com").unwrap();
        assert_eq!(
            url.host,
            Some(Host::Domain("xn--wh-via.example.com".into()))
        );
    }

    #[test]
    fn request_paths_and_origins() {
        for (href, path) in [
            ("https://j.example/v1/join", "/v1/join"),
            ("https://j.example/v1/join?x=/y#z", "/v1/join"),
            ("https://j.example/", "/"),
            ("https://j.example", "/"),
            ("https://j.example?x=/y", "/"),
            ("https://j.example#/y", "/"),
            ("http://[::1]:8787/a%20b/", "/a%20b/"),
            ("https://org/acme", "/acme"),
        ] {
            assert_eq!(path_of(href), path, "{href}");
        }
        for (href, origin) in [
            ("https://j.example/v1/x?y#z", "https://j.example"),
            ("http://localhost:8787/v1", "http://localhost:8787"),
            ("http://[::1]:8787", "http://[::1]:8787"),
            ("https://u:p@j.example/", "https://j.example"),
            ("no-url", ""),
        ] {
            assert_eq!(origin_of(href), origin, "{href}");
        }
    }
}
