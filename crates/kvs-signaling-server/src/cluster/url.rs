//! The URLs of the cluster's Redis: `redis://`, `rediss://`, and Sentinel's
//! `redis+sentinel://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...]/NAME[/DB]`.

/// The port of a Sentinel address that names none.
const SENTINEL_PORT: u16 = 26379;

/// The URL forms, for messages.
pub(super) const URL_FORMS: &str = "redis://HOST:PORT, rediss://HOST:PORT (TLS), or \
     redis+sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME (rediss+sentinel:// for TLS)";

/// A `redis+sentinel://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...]/NAME[/DB]` URL: the
/// Sentinels to ask, and the name of the primary they watch. The user and password are the
/// primary's (as in `redis://`); the Sentinels' own come from
/// [`ClusterConfig::sentinel_username`] and [`ClusterConfig::sentinel_password`].
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SentinelUrl {
    /// `rediss+sentinel://`: TLS to the Sentinels and to the primary.
    pub(super) tls: bool,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) sentinels: Vec<(String, u16)>,
    pub(super) master: String,
    pub(super) db: i64,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .finish()
    }
}

/// `text` with its `%XX` escapes decoded, if they are all valid and the result is UTF-8.
pub(super) fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = char::from(bytes.next()?).to_digit(16)?;
            let low = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(high * 16 + low).ok()?);
        } else {
            out.push(byte);
        }
    }
    String::from_utf8(out).ok()
}

/// One Sentinel address, `HOST`, `HOST:PORT` or `[IPV6]:PORT`.
fn sentinel_address(entry: &str) -> Result<(String, u16), String> {
    let bad = |rule: &str| Err(format!("Sentinel address {entry:?}: {rule}"));
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return bad("an IPv6 address has no closing ']'");
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return bad("write [IPV6]:PORT"),
            },
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return bad("an IPv6 address goes in brackets: [IPV6]:PORT");
            }
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return bad("the host is empty (two commas, or a comma at the end?)");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/@?#%".contains(c))
    {
        return bad("the host may not hold spaces or any of / @ ? # %");
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return bad("the port must be a number from 1 to 65535"),
        },
    };
    Ok((host.to_owned(), port))
}

/// Parses a Sentinel URL; `shown` is the URL without its password, for messages.
pub(super) fn parse_sentinel_url(url: &str, shown: &str) -> Result<SentinelUrl, String> {
    let message = |rule: String| format!("--cluster {shown}: {rule}");
    let bad = |rule: String| Err(message(rule));
    let (tls, rest) = match (
        url.strip_prefix("redis+sentinel://"),
        url.strip_prefix("rediss+sentinel://"),
    ) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return bad(format!("not a Sentinel URL ({URL_FORMS})")),
    };
    if rest.contains(['?', '#']) {
        return bad("a Sentinel URL takes no query (?) or fragment (#)".to_owned());
    }
    let Some((authority, path)) = rest.split_once('/') else {
        return bad(
            "no primary name: write redis+sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME"
                .to_owned(),
        );
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (authority.get(..at), authority.get(at + 1..).unwrap_or("")),
        None => (None, authority),
    };
    let (mut username, mut password) = (None, None);
    if let Some(userinfo) = userinfo {
        let (user, pass) = match userinfo.split_once(':') {
            Some((user, pass)) => (user, Some(pass)),
            None => (userinfo, None),
        };
        let decode = |text: &str, what: &str| {
            percent_decode(text).ok_or_else(|| {
                format!("--cluster {shown}: the {what} has a bad %-escape or is not UTF-8")
            })
        };
        username = Some(decode(user, "user")?).filter(|u| !u.is_empty());
        password = pass
            .map(|pass| decode(pass, "password"))
            .transpose()?
            .filter(|p| !p.is_empty());
    }
    if hosts.is_empty() {
        return bad("no Sentinel address before the '/'".to_owned());
    }
    let sentinels = hosts
        .split(',')
        .map(sentinel_address)
        .collect::<Result<Vec<_>, _>>()
        .map_err(message)?;
    let mut segments = path.split('/');
    let master = segments.next().unwrap_or("");
    let master = percent_decode(master)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            message(
                "the primary's name (after the first '/') is empty or badly %-escaped".to_owned(),
            )
        })?;
    let db = match (segments.next(), segments.next()) {
        (None | Some(""), None) => 0,
        (Some(db), None) => match db.parse::<i64>() {
            Ok(db) if db >= 0 => db,
            _ => return bad(format!("the database {db:?} is not a number from 0 up")),
        },
        _ => return bad("write .../PRIMARY-NAME or .../PRIMARY-NAME/DB, nothing more".to_owned()),
    };
    Ok(SentinelUrl {
        tls,
        username,
        password,
        sentinels,
        master,
        db,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(url: &str) -> Result<SentinelUrl, String> {
        parse_sentinel_url(url, "URL")
    }

    #[test]
    fn a_sentinel_url_names_its_sentinels_primary_and_credentials() {
        assert_eq!(
            sentinel("redis+sentinel://s1:26380,s2,[::1]:26381/mymaster").unwrap(),
            SentinelUrl {
                tls: false,
                username: None,
                password: None,
                sentinels: vec![
                    ("s1".to_owned(), 26380),
                    ("s2".to_owned(), 26379),
                    ("::1".to_owned(), 26381)
                ],
                master: "mymaster".to_owned(),
                db: 0,
            }
        );
        let url = sentinel("rediss+sentinel://kvs:p%40ss%3Aw@s1:1/main/3").unwrap();
        assert!(url.tls);
        assert_eq!(url.username.as_deref(), Some("kvs"));
        assert_eq!(url.password.as_deref(), Some("p@ss:w"));
        assert_eq!(url.master, "main");
        assert_eq!(url.db, 3);
        let url = sentinel("redis+sentinel://:secret@s1/main/").unwrap();
        assert_eq!(
            (url.username, url.password.as_deref()),
            (None, Some("secret"))
        );
        // The password never shows in the Debug form.
        let debug = format!("{:?}", sentinel("redis+sentinel://u:hunter2@s1/m").unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn bad_sentinel_urls_are_refused_with_the_rule() {
        for (url, rule) in [
            ("redis+sentinel://s1:26379", "no primary name"),
            ("redis+sentinel://s1:26379/", "primary's name"),
            ("redis+sentinel:///main", "no Sentinel address"),
            ("redis+sentinel://s1,,s2/main", "host is empty"),
            ("redis+sentinel://s1,/main", "host is empty"),
            ("redis+sentinel://s1:0/main", "port must be a number"),
            ("redis+sentinel://s1:70000/main", "port must be a number"),
            ("redis+sentinel://s1:x/main", "port must be a number"),
            (
                "redis+sentinel://::1:5/main",
                "IPv6 address goes in brackets",
            ),
            ("redis+sentinel://[::1/main", "no closing"),
            ("redis+sentinel://s1/main/x", "database \"x\""),
            ("redis+sentinel://s1/main/-1", "database \"-1\""),
            ("redis+sentinel://s1/main/0/1", "nothing more"),
            ("redis+sentinel://s1/main?db=1", "no query"),
            (
                "redis+sentinel://u:%zz@s1/main",
                "password has a bad %-escape",
            ),
        ] {
            let err = sentinel(url).unwrap_err();
            assert!(err.contains(rule), "{url}: {err}");
            assert!(err.starts_with("--cluster URL: "), "{url}: {err}");
        }
    }

    #[test]
    fn percent_escapes_decode_or_refuse() {
        assert_eq!(percent_decode("a%20b%2F").as_deref(), Some("a b/"));
        assert_eq!(percent_decode("%e2%9c%93").as_deref(), Some("\u{2713}"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
