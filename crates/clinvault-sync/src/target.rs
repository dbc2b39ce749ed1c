//! Where a repository lives: a parsed target URL plus the non-secret settings that go into the
//! vault database, and the credentials that go to the OS keyring. Turning these into an OpenDAL
//! operator happens in `backend`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use clinvault_core::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TlsMin {
    /// TLS 1.3 only (the default).
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
    /// Also TLS 1.2, for old NAS boxes; set per target.
    #[serde(rename = "1.2")]
    Tls12,
}

impl TlsMin {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "1.3" => Ok(TlsMin::Tls13),
            "1.2" => Ok(TlsMin::Tls12),
            _ => Err(Error::InvalidInput(format!(
                "TLS minimum {s:?} is not supported: use 1.3 (default) or 1.2"
            ))),
        }
    }
}

/// The kind of target and its address. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Location {
    File {
        path: String,
    },
    Sftp {
        user: String,
        host: String,
        port: u16,
        path: String,
    },
    Webdav {
        /// `http://host:port` or `https://host:port`.
        endpoint: String,
        path: String,
    },
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
    },
}

/// A target: location plus settings, as stored (JSON) in the vault database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub url: String,
    pub location: Location,
    #[serde(default)]
    pub tls_min: TlsMin,
    /// A CA certificate file (PEM) that alone is trusted for this target.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SFTP: the private key file; the system `ssh` reads it.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// WebDAV user name, S3 access key id are stored with the secret, not here.
    #[serde(default)]
    pub username: Option<String>,
    /// Pack target size in MiB (16–64 keeps WebDAV single-request uploads reasonable).
    #[serde(default = "default_pack_mib")]
    pub pack_mib: u32,
}

fn default_pack_mib() -> u32 {
    16
}

/// Secrets for a target. Wiped on drop; no Debug.
#[derive(Default)]
pub struct Credentials {
    /// WebDAV password.
    pub password: Option<Zeroizing<String>>,
    /// S3 access key id and secret access key.
    pub s3_key_id: Option<Zeroizing<String>>,
    pub s3_secret: Option<Zeroizing<String>>,
}

impl Credentials {
    /// One keyring entry holds all of a target's secrets, as `name=value` lines.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(String::new());
        for (k, v) in [
            ("password", &self.password),
            ("s3_key_id", &self.s3_key_id),
            ("s3_secret", &self.s3_secret),
        ] {
            if let Some(v) = v {
                out.push_str(k);
                out.push('=');
                out.push_str(v);
                out.push('\n');
            }
        }
        Zeroizing::new(out.as_bytes().to_vec())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::Integrity("the stored sync credentials are not text".into()))?;
        let mut c = Credentials::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = Some(Zeroizing::new(v.to_owned()));
            match k {
                "password" => c.password = v,
                "s3_key_id" => c.s3_key_id = v,
                "s3_secret" => c.s3_secret = v,
                _ => {}
            }
        }
        Ok(c)
    }

    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.s3_key_id.is_none() && self.s3_secret.is_none()
    }
}

/// A host name that can only mean this computer, where unencrypted HTTP crosses no network.
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

impl TargetSpec {
    /// Parses `file:///path`, `sftp://user@host:port/path`, `webdav://host/path`,
    /// `webdavs://host/path`, `s3://bucket/prefix?endpoint=...&region=...`. A URL that carries a
    /// password is refused: secrets never travel in URLs (they end up in shell history).
    pub fn parse(raw: &str) -> Result<TargetSpec> {
        let u = url::Url::parse(raw.trim()).map_err(|e| {
            invalid(format!(
                "the sync target is not a valid URL ({e}); examples: file:///mnt/nas/clinvault, \
                 sftp://backup@nas:22/clinvault, webdavs://cloud.example/dav/clinvault, \
                 s3://bucket/prefix?endpoint=https://s3.example&region=eu-west-1"
            ))
        })?;
        if u.password().is_some() {
            return Err(invalid(
                "do not put a password in the target URL: it is asked for separately and kept \
                 in the OS keyring",
            ));
        }
        let path = percent_decode(u.path())?;
        let username = (!u.username().is_empty()).then(|| u.username().to_owned());
        let host = || {
            u.host_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid("the target URL needs a host name"))
        };
        let location = match u.scheme() {
            "file" => {
                // file://folder/x would silently mean /x on this computer: "folder" is a host.
                if u.host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(invalid(
                        "file:// targets need the full path of a folder, e.g. \
                         file:///mnt/nas/clinvault (a relative path or a host name is not one)",
                    ));
                }
                if path.is_empty() || path == "/" {
                    return Err(invalid(
                        "file:// targets need a folder, e.g. file:///mnt/nas/clinvault",
                    ));
                }
                Location::File { path }
            }
            "sftp" => Location::Sftp {
                user: username.clone().ok_or_else(|| {
                    invalid("sftp targets need a user: sftp://user@host:port/path")
                })?,
                host: host()?,
                port: u.port().unwrap_or(22),
                path: if path.is_empty() { "/".into() } else { path },
            },
            "webdav" | "webdavs" => {
                let scheme = if u.scheme() == "webdavs" {
                    "https"
                } else {
                    "http"
                };
                if scheme == "http" && !is_loopback(&host()?) {
                    return Err(invalid(
                        "webdav:// sends the WebDAV password unencrypted, so it is accepted only \
                         for a server on this computer (localhost); use webdavs://",
                    ));
                }
                let endpoint = match u.port() {
                    Some(p) => format!("{scheme}://{}:{p}", host()?),
                    None => format!("{scheme}://{}", host()?),
                };
                Location::Webdav { endpoint, path }
            }
            "s3" => {
                let bucket = host()?;
                let mut endpoint = None;
                let mut region = "us-east-1".to_owned();
                for (k, v) in u.query_pairs() {
                    match k.as_ref() {
                        "endpoint" => endpoint = Some(v.into_owned()),
                        "region" => region = v.into_owned(),
                        other => {
                            return Err(invalid(format!(
                                "unknown s3 option {other:?}: use endpoint and region"
                            )))
                        }
                    }
                }
                if let Some(e) = &endpoint {
                    let local_http = e.starts_with("http://")
                        && url::Url::parse(e)
                            .ok()
                            .and_then(|u| u.host_str().map(is_loopback))
                            .unwrap_or(false);
                    if !(e.starts_with("https://") || local_http) {
                        return Err(invalid("the s3 endpoint must start with https:// (http:// only for a server on this computer: the access keys would travel unencrypted)"));
                    }
                }
                Location::S3 {
                    bucket,
                    prefix: path,
                    endpoint,
                    region,
                }
            }
            other => {
                return Err(invalid(format!(
                "unsupported sync target scheme {other:?}: use file, sftp, webdav, webdavs or s3"
            )))
            }
        };
        let username = match location {
            Location::Sftp { .. } | Location::File { .. } => None,
            _ => username,
        };
        let mut shown = u.clone();
        let _ = shown.set_password(None);
        Ok(TargetSpec {
            url: shown.to_string(),
            location,
            tls_min: TlsMin::default(),
            ca_file: None,
            ssh_key: None,
            username,
            pack_mib: default_pack_mib(),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self.location {
            Location::File { .. } => "file",
            Location::Sftp { .. } => "sftp",
            Location::Webdav { .. } => "webdav",
            Location::S3 { .. } => "s3",
        }
    }

    /// Which secrets this target needs.
    pub fn needs_password(&self) -> bool {
        matches!(self.location, Location::Webdav { .. }) && self.username.is_some()
    }

    pub fn needs_s3_keys(&self) -> bool {
        matches!(self.location, Location::S3 { .. })
    }

    pub fn pack_bytes(&self) -> usize {
        (self.pack_mib.clamp(1, 256) as usize) << 20
    }
}

fn percent_decode(p: &str) -> Result<String> {
    percent_encoding::percent_decode_str(p)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| invalid("the target path is not valid text"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let f = TargetSpec::parse("file:///mnt/nas/clin%20vault").unwrap();
        assert_eq!(
            f.location,
            Location::File {
                path: "/mnt/nas/clin vault".into()
            }
        );
        let s = TargetSpec::parse("sftp://backup@nas.local:2222/srv/cv").unwrap();
        assert_eq!(
            s.location,
            Location::Sftp {
                user: "backup".into(),
                host: "nas.local".into(),
                port: 2222,
                path: "/srv/cv".into()
            }
        );
        let w = TargetSpec::parse("webdavs://jo@cloud.example/remote.php/dav/cv").unwrap();
        assert_eq!(
            w.location,
            Location::Webdav {
                endpoint: "https://cloud.example".into(),
                path: "/remote.php/dav/cv".into()
            }
        );
        assert_eq!(w.username.as_deref(), Some("jo"));
        assert!(w.needs_password());
        let b =
            TargetSpec::parse("s3://bucket/clinic/a?endpoint=http://127.0.0.1:9000&region=eu-1")
                .unwrap();
        assert_eq!(
            b.location,
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "/clinic/a".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-1".into()
            }
        );
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for (url, needle) in [
            ("webdavs://jo:secret@cloud.example/dav", "password"),
            ("ftp://host/x", "unsupported"),
            ("sftp://host/x", "user"),
            ("file:///", "folder"),
            ("file://relative/folder", "full path"),
            ("s3://b/p?colour=red", "unknown s3 option"),
            ("not a url", "not a valid URL"),
            ("webdav://nas.local/dav", "webdavs://"),
            ("webdav://192.168.1.5:8080/dav", "webdavs://"),
            ("s3://b/p?endpoint=http://minio.lan:9000", "https://"),
        ] {
            let e = TargetSpec::parse(url).unwrap_err();
            assert_eq!(e.kind(), clinvault_core::ErrorKind::InvalidInput, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    #[test]
    fn plain_http_only_to_this_computer() {
        for url in [
            "webdav://127.0.0.1:8080/dav",
            "webdav://localhost/dav",
            "webdav://[::1]:8080/dav",
            "s3://b/p?endpoint=http://127.0.0.1:9000",
        ] {
            assert!(TargetSpec::parse(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn credentials_round_trip() {
        let c = Credentials {
            password: Some(Zeroizing::new("p=w".into())),
            s3_key_id: None,
            s3_secret: Some(Zeroizing::new("s".into())),
        };
        let d = Credentials::decode(&c.encode()).unwrap();
        assert_eq!(d.password.as_deref().map(String::as_str), Some("p=w"));
        assert!(d.s3_key_id.is_none());
        assert_eq!(d.s3_secret.as_deref().map(String::as_str), Some("s"));
    }
}
