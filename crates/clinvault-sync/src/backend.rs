//! One blocking façade over an OpenDAL operator, so the repository code reads like plain file
//! I/O. Every write becomes visible atomically: where the service can rename, objects are
//! written under `tmp/` and renamed into place (a killed upload leaves only a `tmp/` object,
//! which is never read and is swept by the next writer); S3 PUTs are atomic by themselves.
//! There is no retry layer: a failed request fails the operation, and a certificate failure in
//! particular is reported at once instead of being retried.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use opendal::layers::TimeoutLayer;
use opendal::{ErrorKind as OdErr, HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use clinvault_core::{Error, Result};

use crate::target::{Credentials, Location, TargetSpec, TlsMin};

#[derive(Clone)]
pub struct Backend {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    can_rename: bool,
    label: String,
    /// A folder target's root: its directories are synced after a rename (OpenDAL syncs the
    /// file only), so a push recorded as done survives a power cut.
    local_root: Option<std::path::PathBuf>,
}

/// An entry of a listing: its name within the folder and its size when the service says.
#[derive(Clone, Debug)]
pub struct Listed {
    pub name: String,
    pub size: Option<u64>,
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io {
        context: what.to_owned(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// A readable message for an OpenDAL failure, naming certificate problems plainly.
fn describe(e: &opendal::Error) -> String {
    let mut chain = e.to_string();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    if (lower.contains("timeout reached") || lower.contains("timed out"))
        && !lower.contains("connect")
    {
        return format!(
            "the server stopped answering (nothing came back in time; it may be overloaded, or \
             the connection was dropped on the way): {chain}"
        );
    }
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("invalidcertificate")
    {
        return format!(
            "the server's TLS certificate is not trusted (not retried; pin the NAS's CA with \
             --ca-file if it has its own): {chain}"
        );
    }
    if lower.contains("protocol version") || lower.contains("protocolversion") {
        return format!(
            "the server does not speak TLS 1.3 (allow 1.2 for this target with --tls-min 1.2 \
             if it is an old NAS): {chain}"
        );
    }
    chain
}

/// How long a sync target may keep an operation waiting. Without bounds a server that accepts
/// a request and never answers would hold the operation, and a push's lock, until stopped.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Opening a connection to an HTTPS (WebDAV, S3) server.
    pub connect: Duration,
    /// Any request that moves no object (rename, stat), on every kind of target.
    pub silence: Duration,
    /// One read or write of an object, or one listing or deletion, on every kind of target,
    /// until its answer starts: generous, since a pack goes up in one request on a slow line.
    pub transfer: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            connect: Duration::from_secs(30),
            silence: Duration::from_secs(120),
            transfer: Duration::from_secs(15 * 60),
        }
    }
}

/// The most a `config` or lock object may hold; both are a few hundred bytes. They are read
/// before anything is authenticated, so an object of gigabytes planted on the target must not
/// be read into memory whole.
pub const SMALL_OBJECT_MAX: usize = 64 * 1024;

/// The most a metadata object (a snapshot or an index) may hold. A snapshot lists every chunk of
/// the vault (about 100 bytes each: a 50 GB vault in 1 MiB chunks needs about 5 MiB).
pub const META_OBJECT_MAX: usize = 64 << 20;

/// The most a pack may hold: the largest pack size a device may choose (256 MiB), plus the blob
/// that filled it (a chunk is at most 4 MiB) and its header.
pub const PACK_OBJECT_MAX: usize = (256 + 16) << 20;

/// What an object of the repository is, by where it is kept (for messages).
fn kind_of(path: &str) -> &'static str {
    match path.split('/').next() {
        Some("config") => "config",
        Some("locks") => "lock",
        Some("data") => "pack",
        Some("snapshots") => "snapshot",
        Some("index") => "index",
        _ => "file",
    }
}

/// How long one request for a small object (a lock) may take.
const SMALL_OBJECT_PATIENCE: Duration = Duration::from_secs(60);

/// How long each step of a connection test may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether an HTTP status code stands as a word in an error text: a port such as 40165 in the
/// URL the error quotes is not a 401.
fn has_status(lower: &str, code: &str) -> bool {
    lower.match_indices(code).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == ':' || c == '.')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// A failure as a person would name it: the usual causes first, then the details.
fn plain(e: &opendal::Error) -> String {
    let detail = describe(e);
    let lower = detail.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if detail.starts_with("the server's TLS certificate")
        || detail.starts_with("the server does not speak")
        || detail.starts_with("the server stopped answering")
    {
        return detail;
    }
    if has(&[
        "connection refused",
        "error trying to connect",
        "dns error",
        "failed to lookup",
        "name or service not known",
        "no route to host",
        "network is unreachable",
        "timed out",
        "connection reset",
        "could not resolve",
        "connect error",
        "client error (connect)",
    ]) {
        return format!(
            "cannot reach the server (wrong address or port, the server is off, or the network \
             is down): {detail}"
        );
    }
    if e.kind() == OdErr::PermissionDenied
        || has_status(&lower, "401")
        || has_status(&lower, "403")
        || has(&[
            "unauthorized",
            "forbidden",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "accessdenied",
            "permission denied (publickey",
            "authentication failed",
        ])
    {
        return format!(
            "the server refused the credentials (wrong user name, password or access key, or \
             no access to this folder): {detail}"
        );
    }
    if has(&[
        "host key verification failed",
        "no matching host key",
        "known_hosts",
    ]) {
        return format!(
            "the server's SSH host key is not known to this computer: connect once with `ssh` \
             and check its fingerprint, then test again: {detail}"
        );
    }
    if has(&["read-only", "readonly", "read only"]) {
        return format!("the target is read-only: {detail}");
    }
    detail
}

impl Backend {
    /// Connects (lazily: nothing is sent until the first request).
    pub fn open(spec: &TargetSpec, creds: &Credentials) -> Result<Backend> {
        Backend::open_with(spec, creds, Patience::default())
    }

    /// As `open`, waiting on the target no longer than `patience` says.
    pub fn open_with(
        spec: &TargetSpec,
        creds: &Credentials,
        patience: Patience,
    ) -> Result<Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| io_error("cannot start the I/O runtime", e))?;
        let build_err = |e: opendal::Error| {
            Error::InvalidInput(format!("the sync target cannot be used: {}", describe(&e)))
        };
        let op =
            match &spec.location {
                Location::File { path } => {
                    std::fs::create_dir_all(path)
                        .map_err(|e| io_error("cannot create the target folder", e))?;
                    Operator::new(opendal::services::Fs::default().root(path)).map_err(build_err)?
                }
                #[cfg(unix)]
                Location::Sftp {
                    user,
                    host,
                    port,
                    path,
                } => {
                    let mut b = opendal::services::Sftp::default()
                        .endpoint(&format!("ssh://{user}@{host}:{port}"))
                        .user(user)
                        .root(path)
                        .known_hosts_strategy("strict");
                    if let Some(key) = &spec.ssh_key {
                        b = b.key(&key.to_string_lossy());
                    }
                    Operator::new(b).map_err(build_err)?
                }
                #[cfg(not(unix))]
                Location::Sftp { .. } => {
                    return Err(Error::Incompatible(
                        "SFTP targets are not supported on this platform yet".into(),
                    ))
                }
                Location::Webdav { endpoint, path } => {
                    let mut b = opendal::services::Webdav::default()
                        .endpoint(endpoint)
                        .root(path);
                    if let Some(u) = &spec.username {
                        b = b.username(u);
                    }
                    if let Some(p) = &creds.password {
                        b = b.password(p);
                    }
                    with_client(
                        Operator::new(b).map_err(build_err)?,
                        spec,
                        endpoint,
                        &patience,
                    )?
                }
                Location::S3 {
                    bucket,
                    prefix,
                    endpoint,
                    region,
                } => {
                    let mut b = opendal::services::S3::default()
                        .bucket(bucket)
                        .root(if prefix.is_empty() { "/" } else { prefix })
                        .region(region)
                        .disable_config_load()
                        .disable_ec2_metadata();
                    if let Some(e) = endpoint {
                        b = b.endpoint(e);
                    }
                    match (&creds.s3_key_id, &creds.s3_secret) {
                        (Some(id), Some(secret)) => {
                            b = b.access_key_id(id).secret_access_key(secret);
                        }
                        _ => return Err(Error::InvalidInput(
                            "this S3 target has no access key stored: run `sync target set` again"
                                .into(),
                        )),
                    }
                    let ep = endpoint.clone().unwrap_or_else(|| "https://s3".into());
                    with_client(Operator::new(b).map_err(build_err)?, spec, &ep, &patience)?
                }
            };
        let op = op.layer(
            TimeoutLayer::default()
                .with_timeout(patience.silence)
                .with_io_timeout(patience.transfer),
        );
        let can_rename = op.info().capability().rename;
        Ok(Backend {
            op,
            rt: Arc::new(rt),
            can_rename,
            label: spec.kind().to_owned(),
            local_root: match &spec.location {
                Location::File { path } => Some(path.into()),
                _ => None,
            },
        })
    }

    /// The same target with short time limits (a minute per request), for objects of a few
    /// hundred bytes such as locks: their keep-alive must not hang, and be waited for, as long
    /// as a pack upload may take.
    pub fn for_small_objects(&self) -> Backend {
        let mut quick = self.clone();
        quick.op = self.op.clone().layer(
            TimeoutLayer::default()
                .with_timeout(SMALL_OBJECT_PATIENCE)
                .with_io_timeout(SMALL_OBJECT_PATIENCE),
        );
        quick
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn map(&self, what: &str, e: opendal::Error) -> Error {
        match e.kind() {
            OdErr::NotFound => Error::NotFound(format!("{what}: not found on the sync target")),
            _ => io_error(&format!("{what} ({} target)", self.label), describe(&e)),
        }
    }

    /// Reads a whole object of at most `max` bytes (`SMALL_OBJECT_MAX`, `META_OBJECT_MAX`,
    /// `PACK_OBJECT_MAX`). Objects are authenticated only once read, so one that is larger is
    /// refused after that many bytes, without reading the rest: a target cannot exhaust memory
    /// by serving an object of gigabytes.
    pub fn read(&self, path: &str, max: usize) -> Result<Vec<u8>> {
        let what = format!("reading {path}");
        self.rt.block_on(async {
            let reader = self.op.reader(path).await.map_err(|e| self.map(&what, e))?;
            let mut stream = reader
                .into_bytes_stream(..)
                .await
                .map_err(|e| self.map(&what, e))?;
            let mut out = Vec::new();
            while let Some(chunk) = stream.try_next().await.map_err(|e| {
                match e
                    .into_inner()
                    .and_then(|e| e.downcast::<opendal::Error>().ok())
                {
                    Some(e) => self.map(&what, *e),
                    None => io_error(
                        &format!("{what} ({} target)", self.label),
                        "the read failed",
                    ),
                }
            })? {
                if out.len() + chunk.len() > max {
                    return Err(Error::Integrity(format!(
                        "{path} on the sync target is larger than any ClinVault {} \
                         ({} KiB at most): it was not written by ClinVault",
                        kind_of(path),
                        max / 1024
                    )));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        })
    }

    /// Reads a whole object that must be small (`SMALL_OBJECT_MAX`): `config` and locks.
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>> {
        self.read(path, SMALL_OBJECT_MAX)
    }

    pub fn read_range(&self, path: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        self.rt
            .block_on(self.op.read_options(
                path,
                opendal::options::ReadOptions {
                    range: (start..start + len).into(),
                    ..Default::default()
                },
            ))
            .map(|b| b.to_vec())
            .map_err(|e| self.map(&format!("reading {path}"), e))
    }

    /// Writes `bytes` so that `path` appears complete or not at all.
    pub fn write_atomic(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let what = format!("writing {path}");
        if self.can_rename {
            let tmp = format!("tmp/{}", uuid::Uuid::new_v4());
            self.rt
                .block_on(self.op.write(&tmp, bytes))
                .map_err(|e| self.map(&what, e))?;
            if path.starts_with("data/") {
                clinvault_core::fault::point("sync.pack_before_rename");
            }
            self.rt
                .block_on(self.op.rename(&tmp, path))
                .map_err(|e| self.map(&what, e))?;
            if let Some(root) = &self.local_root {
                let dir = root.join(path);
                if let Some(parent) = dir.parent() {
                    std::fs::File::open(parent)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| io_error(&format!("cannot flush {what}"), e))?;
                }
            }
            Ok(())
        } else {
            self.rt
                .block_on(self.op.write(path, bytes))
                .map(|_| ())
                .map_err(|e| self.map(&what, e))
        }
    }

    pub fn delete(&self, path: &str) -> Result<()> {
        self.rt
            .block_on(self.op.delete(path))
            .map_err(|e| self.map(&format!("deleting {path}"), e))
    }

    /// Objects directly under `dir/` (no trailing slash in `dir`); an absent folder is empty.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let prefix = format!("{dir}/");
        let entries = match self.rt.block_on(self.op.list(&prefix)) {
            Ok(e) => e,
            Err(e) if e.kind() == OdErr::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.map(&format!("listing {dir}"), e)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| !e.path().ends_with('/'))
            .map(|e| {
                let len = e.metadata().content_length();
                Listed {
                    name: e.name().to_owned(),
                    size: (len > 0).then_some(len),
                }
            })
            .collect())
    }

    /// Checks the target for "test connection": lists its top folder, writes a small probe
    /// object and deletes it again, each within `PROBE_TIMEOUT`. Failures come back as a person
    /// would say them (wrong credentials, unreachable, certificate refused, read-only).
    pub fn probe(&self) -> Result<()> {
        let name = format!(".clinvault-connection-test-{}", uuid::Uuid::new_v4());
        self.timed("cannot list the target folder", async {
            match self.op.list("/").await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == OdErr::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        self.timed("cannot write to the target", async {
            self.op.write(&name, b"ok".to_vec()).await.map(|_| ())
        })?;
        self.timed("cannot delete from the target", self.op.delete(&name))
    }

    fn timed(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = opendal::Result<()>>,
    ) -> Result<()> {
        let outcome = self
            .rt
            .block_on(async { tokio::time::timeout(PROBE_TIMEOUT, fut).await });
        let reason = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => plain(&e),
            Err(_) => format!(
                "the server did not answer within {} seconds (unreachable, or a firewall drops \
                 the connection)",
                PROBE_TIMEOUT.as_secs()
            ),
        };
        Err(Error::Io {
            context: format!("{what} ({} target)", self.label),
            source: std::io::Error::other(reason),
        })
    }

    /// Size of one object, or None when it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        match self.rt.block_on(self.op.stat(path)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == OdErr::NotFound => Ok(None),
            Err(e) => Err(self.map(&format!("checking {path}"), e)),
        }
    }
}

/// Plugs a reqwest client with this target's TLS rules into the operator's HTTP transport:
/// TLS 1.3 only unless the target allows 1.2, full certificate validation, and with a pinned CA
/// file that CA alone is trusted.
fn with_client(
    op: Operator,
    spec: &TargetSpec,
    endpoint: &str,
    patience: &Patience,
) -> Result<Operator> {
    let min = match spec.tls_min {
        TlsMin::Tls13 => reqwest::tls::Version::TLS_1_3,
        TlsMin::Tls12 => reqwest::tls::Version::TLS_1_2,
    };
    let mut b = reqwest::Client::builder()
        .tls_version_min(min)
        .http1_only()
        .connect_timeout(patience.connect)
        // reqwest's read timeout runs from sending the request until the answer starts, upload
        // included: it must allow a whole pack to go up.
        .read_timeout(patience.transfer)
        .redirect(reqwest::redirect::Policy::none());
    if endpoint.starts_with("https://") {
        b = b.https_only(true);
    }
    if let Some(ca) = &spec.ca_file {
        let pem = std::fs::read(ca).map_err(|e| {
            Error::InvalidInput(format!("cannot read the CA file {}: {e}", ca.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
            Error::InvalidInput(format!("{} is not a PEM certificate file", ca.display()))
        })?;
        if certs.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{} holds no certificate",
                ca.display()
            )));
        }
        b = b.tls_certs_only(certs);
    }
    let client = b
        .build()
        .map_err(|e| io_error("cannot set up the HTTPS client", e))?;
    let transport = HttpTransporter::new(ReqwestTransport::new(client));
    let ctx = op.base_context().with_http_transport(transport);
    Ok(op.with_context(ctx))
}

#[cfg(test)]
mod tests {
    use super::has_status;

    #[test]
    fn a_status_code_is_a_word_and_never_part_of_a_port_or_number() {
        assert!(has_status("unexpected status: 401 unauthorized", "401"));
        assert!(has_status("http 403", "403"));
        assert!(has_status("(403)", "403"));
        // The URL an error quotes: port 40165, port 401, a byte count.
        assert!(!has_status("url: http://127.0.0.1:40165/dav/", "401"));
        assert!(!has_status("url: http://127.0.0.1:401/dav/", "401"));
        assert!(!has_status("listed: 14030 bytes", "403"));
        assert!(!has_status("host 10.0.4.3", "403"));
    }
}
