//! Real storage servers on 127.0.0.1 for the sync tests: a folder, OpenSSH's sshd (SFTP),
//! rclone's WebDAV server (plain and TLS 1.3 with a throwaway CA), and s3s-fs (S3). Each runs
//! from a private temporary folder and is killed when its handle drops. Nothing touches the
//! real user's ~/.ssh: the SFTP client runs with a wrapper `ssh` first on PATH that points it at
//! the test's own known_hosts file and config.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clinvault_sync::target::{Credentials, TargetSpec};
use zeroize::Zeroizing;

pub struct Server {
    pub name: &'static str,
    pub spec: TargetSpec,
    pub user: Option<String>,
    pub password: Option<String>,
    pub s3_keys: Option<(String, String)>,
    /// Where the server keeps the repository's objects on this machine (for tamper tests).
    pub storage: PathBuf,
    pub tmp: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    pub fn creds(&self) -> Credentials {
        Credentials {
            password: self.password.clone().map(Zeroizing::new),
            s3_key_id: self.s3_keys.as_ref().map(|k| Zeroizing::new(k.0.clone())),
            s3_secret: self.s3_keys.as_ref().map(|k| Zeroizing::new(k.1.clone())),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not start listening on {port}");
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required for the sync tests: scripts/setup-deps.sh --test installs {package}"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn folder() -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("repo");
    let spec = TargetSpec::parse(&format!("file://{}", storage.display())).unwrap();
    Server {
        name: "folder",
        spec,
        user: None,
        password: None,
        s3_keys: None,
        storage,
        tmp,
        child: None,
    }
}

pub fn s3() -> Server {
    require(
        "s3s-fs",
        "s3s-fs (cargo install s3s-fs@0.14.1 --locked --features binary)",
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join("clinic-bucket")).unwrap();
    let port = free_port();
    let (ak, sk) = (
        "TESTACCESSKEY".to_string(),
        "test-secret-key-1234567890".to_string(),
    );
    let mut child = Command::new("s3s-fs")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            &ak,
            "--secret-key",
            &sk,
        ])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    wait_for_port(port, &mut child, "s3s-fs");
    let spec = TargetSpec::parse(&format!(
        "s3://clinic-bucket/backups/cv?endpoint=http://127.0.0.1:{port}&region=us-east-1"
    ))
    .unwrap();
    Server {
        name: "s3",
        spec,
        user: None,
        password: None,
        s3_keys: Some((ak, sk)),
        storage: root.join("clinic-bucket/backups/cv"),
        tmp,
        child: Some(child),
    }
}

fn rclone_webdav(tls: Option<(&Path, &Path)>) -> (tempfile::TempDir, PathBuf, u16, Child) {
    require("rclone", "rclone");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("dav");
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let mut cmd = Command::new("rclone");
    cmd.args(["serve", "webdav"])
        .arg(&root)
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--user",
            "clinic",
            "--pass",
            "dav-pass-123",
        ])
        // Tamper tests change files behind the server's back: no directory cache.
        .args(["--dir-cache-time", "0s"])
        .env("RCLONE_CONFIG", tmp.path().join("rclone.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((cert, key)) = tls {
        cmd.arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(["--min-tls-version", "tls1.3"]);
    }
    let mut child = cmd.spawn().expect("rclone starts");
    wait_for_port(port, &mut child, "rclone serve webdav");
    (tmp, root, port, child)
}

pub fn webdav() -> Server {
    let (tmp, root, port, child) = rclone_webdav(None);
    let spec = TargetSpec::parse(&format!("webdav://clinic@127.0.0.1:{port}/cv")).unwrap();
    Server {
        name: "webdav",
        spec,
        user: Some("clinic".into()),
        password: Some("dav-pass-123".into()),
        s3_keys: None,
        storage: root.join("cv"),
        tmp,
        child: Some(child),
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl CLI).
pub fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require("openssl", "openssl");
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.pem");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ClinVault test CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .args(["-CAcreateserial"])
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    (ca, cert, key)
}

pub fn webdav_tls() -> Server {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(certs.path());
    let (tmp, root, port, child) = rclone_webdav(Some((&cert, &key)));
    let ca_copy = tmp.path().join("ca.pem");
    std::fs::copy(&ca, &ca_copy).unwrap();
    let mut spec = TargetSpec::parse(&format!("webdavs://clinic@127.0.0.1:{port}/cv")).unwrap();
    spec.ca_file = Some(ca_copy);
    Server {
        name: "webdav-tls",
        spec,
        user: Some("clinic".into()),
        password: Some("dav-pass-123".into()),
        s3_keys: None,
        storage: root.join("cv"),
        tmp,
        child: Some(child),
    }
}

/// sshd on a high port with throwaway host and user keys. Returns the server and the folder
/// holding the `ssh` wrapper to put first on PATH.
pub fn sftp() -> (Server, PathBuf) {
    require("sshd", "openssh-server");
    require("ssh", "openssh-client");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // sshd insists on its privilege-separation folder.
    let _ = std::fs::create_dir_all("/run/sshd");
    let host_key = d.join("host_ed25519");
    let user_key = d.join("user_ed25519");
    for k in [&host_key, &user_key] {
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(k));
    }
    std::fs::copy(d.join("user_ed25519.pub"), d.join("authorized_keys")).unwrap();
    let port = free_port();
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        });
    let config = d.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {pid}\n\
             Subsystem sftp internal-sftp\nLogLevel ERROR\n",
            hk = host_key.display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    let sshd = Command::new("sh")
        .args(["-c", "command -v sshd || echo /usr/sbin/sshd"])
        .output()
        .unwrap();
    let sshd = String::from_utf8(sshd.stdout).unwrap().trim().to_string();
    let mut child = Command::new(&sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    wait_for_port(port, &mut child, "sshd");
    // The client side: a known_hosts file with the throwaway host key, and a wrapper so the
    // system ssh that OpenDAL runs uses it (ssh finds ~ through the password database, so
    // setting HOME would not do).
    let pubkey = std::fs::read_to_string(d.join("host_ed25519.pub")).unwrap();
    let mut parts = pubkey.split_whitespace();
    let known = format!(
        "[127.0.0.1]:{port} {} {}\n",
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    std::fs::write(d.join("known_hosts"), known).unwrap();
    std::fs::write(d.join("ssh_config"), "Host *\n  BatchMode yes\n").unwrap();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real_ssh = Command::new("sh")
        .args(["-c", "command -v ssh"])
        .output()
        .unwrap();
    let real_ssh = String::from_utf8(real_ssh.stdout)
        .unwrap()
        .trim()
        .to_string();
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {real_ssh} -F {cfg} -o UserKnownHostsFile={kh} -o GlobalKnownHostsFile=/dev/null \"$@\"\n",
            cfg = d.join("ssh_config").display(),
            kh = d.join("known_hosts").display(),
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&user_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let root = d.join("sftp-root");
    std::fs::create_dir_all(&root).unwrap();
    let mut spec =
        TargetSpec::parse(&format!("sftp://{user}@127.0.0.1:{port}{}", root.display())).unwrap();
    spec.ssh_key = Some(user_key);
    let server = Server {
        name: "sftp",
        spec,
        user: Some(user),
        password: None,
        s3_keys: None,
        storage: root,
        tmp,
        child: Some(child),
    };
    (server, bin)
}
