//! Browser origins a server lists for CORS (the cosigner's gRPC-web API, both gateways,
//! the recovery agent): one rule, so a browser extension's origin is accepted or
//! refused the same way everywhere.

/// Why an origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {origin:?}: {why}")]
pub struct OriginError {
    /// The origin as given.
    pub origin: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks and normalizes one exact origin (no wildcard; callers that accept `*` for
/// development check for it first):
/// - `http://host[:port]` and `https://host[:port]` (host: letters, digits, `-`, `.`,
///   or a bracketed IPv6 address; port 1-65535);
/// - a browser extension: `chrome-extension://<id>` (32 letters `a`-`p`, Chrome and
///   Edge), `moz-extension://<uuid>` (Firefox), `safari-web-extension://<uuid>`.
///
/// The scheme and host are lowercased and a trailing `/` is dropped (the form a
/// browser sends in `Origin`); a path, query, user info or a pattern is refused.
pub fn parse_origin(origin: &str) -> Result<String, OriginError> {
    let err = |why| OriginError {
        origin: origin.to_string(),
        why,
    };
    let o = origin.trim();
    let o = o.strip_suffix('/').unwrap_or(o).to_ascii_lowercase();
    let (scheme, rest) = o
        .split_once("://")
        .ok_or_else(|| err("use scheme://host[:port] (http, https) or an extension origin"))?;
    if rest.is_empty() {
        return Err(err("no host"));
    }
    if rest.contains(['/', '?', '#', '@', '*']) {
        return Err(err("an origin has no path, query, user or wildcard"));
    }
    match scheme {
        "http" | "https" => check_host_port(rest).map_err(err)?,
        "chrome-extension" => {
            if rest.len() != 32 || !rest.bytes().all(|b| (b'a'..=b'p').contains(&b)) {
                return Err(err("a Chrome extension id is 32 letters a-p"));
            }
        }
        "moz-extension" | "safari-web-extension" => {
            if !is_uuid(rest) {
                return Err(err("a Firefox or Safari extension origin is a UUID"));
            }
        }
        _ => return Err(err("the scheme must be http, https, chrome-extension, moz-extension or safari-web-extension")),
    }
    Ok(o)
}

fn check_host_port(rest: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("an unclosed IPv6 bracket")?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("not an IPv6 address");
        }
        match after {
            "" => (addr, None),
            p => (
                addr,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
    {
        return Err("the host has characters a host name cannot have");
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(1..) if !p.starts_with('0') => {}
            _ => return Err("the port must be 1-65535"),
        }
    }
    Ok(())
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_origins_and_normalizes_them() {
        for (given, want) in [
            ("http://127.0.0.1:8090", "http://127.0.0.1:8090"),
            ("https://Wallet.Example.com/", "https://wallet.example.com"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://localhost", "http://localhost"),
            (
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
            ),
            (
                "moz-extension://0f8fad5b-d9cb-469f-a165-70867728950e/",
                "moz-extension://0f8fad5b-d9cb-469f-a165-70867728950e",
            ),
        ] {
            assert_eq!(parse_origin(given).as_deref(), Ok(want), "{given}");
        }
    }

    #[test]
    fn refuses_patterns_paths_and_bad_ids() {
        for bad in [
            "*",
            "chrome-extension://*",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnoq", // q is not a-p
            "chrome-extension://abc",
            "moz-extension://not-a-uuid",
            "https://*.example.com",
            "https://example.com/path",
            "https://user@example.com",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:08",
            "example.com",
            "ftp://example.com",
            "http://",
            "http://[::1",
            "http://exa mple.com",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} was accepted");
        }
    }
}
