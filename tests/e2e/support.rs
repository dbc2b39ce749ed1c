//! The harness: a private X server (unless DISPLAY is set), tauri-driver in front of
//! WebKitWebDriver, and the real app binary on a fresh vault in a temporary folder.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

pub const ADMIN_PASS: &str = "correct horse battery staple orbit";
pub const RECEPTION_PASS: &str = "lantern meadow copper violin";

/// One app window at a time: the tests share the machine's two cores, and the app is single-instance.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn app_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clinvault-desktop"))
}

/// target/e2e, beside the build that the app binary came from.
pub fn artefact_dir() -> PathBuf {
    let bin = app_binary();
    let target = bin
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where "save a copy" writes in a test (the save dialog's stand-in answers
/// `<this folder>/<suggested name>`): under target/e2e/, outside the folders the plaintext
/// scans walk, like a folder the person chose.
pub fn saved_dir(test: &str) -> PathBuf {
    let dir = artefact_dir().join(format!("{test}-saved"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The file the open dialog's stand-in answers with (the test writes it before clicking).
pub fn pick_file(test: &str) -> PathBuf {
    let dir = artefact_dir().join(format!("{test}-pick"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("referral-letter.pdf")
}

fn find_tool(name: &str) -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin").join(name));
    }
    candidates.into_iter().find(|c| c.is_file()).unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/setup-deps.sh --test (it installs tauri-driver, WebKitWebDriver and Xvfb)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20 s");
}

/// Stops a child with SIGTERM (so tauri-driver stops WebKitWebDriver and the app), then reaps it.
fn terminate(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A private Xvfb; `-displayfd` has it pick a free display and tell us which.
fn start_xvfb() -> (Child, String) {
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let child = Command::new(find_tool("Xvfb"))
        .args([
            "-displayfd",
            &fds[1].to_string(),
            "-screen",
            "0",
            "1280x900x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    unsafe { libc::close(fds[1]) };
    let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut out = String::new();
    let mut buf = [0u8; 16];
    while !out.contains('\n') {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "Xvfb did not report a display");
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    (child, format!(":{}", out.trim()))
}

pub struct App {
    pub client: Client,
    pub vault: PathBuf,
    name: String,
    driver: Child,
    xvfb: Option<Child>,
    _tmp: tempfile::TempDir,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl App {
    /// Starts the app on a fresh vault.
    pub async fn start(name: &str) -> App {
        Self::start_with(name, |_| {}).await
    }

    /// Starts the app on a vault that `prepare` may create first (its folder path is given).
    // Holding the guard is the point (one app window at a time, for the App's whole life); each
    // test has its own runtime, so a waiting test blocks only its own thread.
    #[allow(clippy::await_holding_lock)]
    pub async fn start_with(name: &str, prepare: impl FnOnce(&Path)) -> App {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let (xvfb, display) = match std::env::var("DISPLAY") {
            Ok(d) if !d.is_empty() => (None, d),
            _ => {
                let (c, d) = start_xvfb();
                (Some(c), d)
            }
        };
        let port = free_port();
        let native = free_port();
        let vault = tmp.path().join("vault");
        prepare(&vault);
        let log = std::fs::File::create(artefact_dir().join(format!("{name}.driver.log"))).unwrap();
        let mut driver = Command::new(find_tool("tauri-driver"))
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &display)
            .env("CLINVAULT_VAULT", &vault)
            .env("CLINVAULT_TEST_FAST_KDF", "1")
            // Stand-ins for the native save/open dialogs, which WebDriver cannot drive
            // (honoured only in test-hooks builds; see src-tauri/document_commands.rs).
            .env("CLINVAULT_TEST_SAVE_DIR", saved_dir(name))
            .env("CLINVAULT_TEST_PICK_FILE", pick_file(name))
            .env("XDG_CONFIG_HOME", tmp.path().join("config"))
            .env("XDG_DATA_HOME", tmp.path().join("data"))
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            // No session bus: no single-instance hand-over to a developer's running app, no keyring.
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        eprintln!("[{name}] display {display}, tauri-driver on {port}/{native}");
        wait_for_port(port, &mut driver, "tauri-driver");
        wait_for_port(native, &mut driver, "WebKitWebDriver");

        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": app_binary() }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{port}");
        let connect = builder.connect(&url);
        let client = match tokio::time::timeout(Duration::from_secs(60), connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                terminate(&mut driver);
                panic!("no WebDriver session: {e}");
            }
            Err(_) => {
                terminate(&mut driver);
                panic!("no WebDriver session within 60 s (is there a display?)");
            }
        };
        eprintln!("[{name}] session open");
        App {
            client,
            vault,
            name: name.to_owned(),
            driver,
            xvfb,
            _tmp: tmp,
            _guard: guard,
        }
    }

    pub async fn el(&self, css: &str) -> Element {
        self.wait_for(css, 20).await
    }

    pub async fn wait_for(&self, css: &str, secs: u64) -> Element {
        eprintln!("[{}] waiting for {css}", self.name);
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(secs))
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                self.screenshot("failure").await;
                panic!(
                    "{css} did not appear within {secs} s: {e}; page text: {}",
                    self.text().await
                );
            }
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// Starts recording the page's Content-Security-Policy violations (the app is one document,
    /// so this lasts until the window reloads).
    pub async fn watch_csp(&self) {
        self.client
            .execute(
                "window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));",
                vec![],
            )
            .await
            .unwrap();
    }

    /// Fails the test if the page refused anything under its CSP since `watch_csp`.
    pub async fn assert_no_csp_violations(&self) {
        let csp = self
            .client
            .execute("return window.__csp;", vec![])
            .await
            .unwrap();
        assert_eq!(csp, serde_json::json!([]), "CSP violations: {csp}");
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.el(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Clicks the element `css` finds. A list that is still redrawing (a search answering the
    /// last letters typed) can replace the element between finding and clicking it; that click
    /// did not happen, so it is retried on the element now there.
    pub async fn click(&self, css: &str) {
        for attempt in 0.. {
            match self.el(css).await.click().await {
                Ok(_) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if attempt < 5
                        && e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("[{}] cannot click {css}: {e}", self.name),
            }
        }
    }

    pub async fn text_of(&self, css: &str) -> String {
        self.el(css).await.text().await.unwrap()
    }

    /// Everything a person could read in the window.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if t.contains(needle) {
                return t;
            }
            if Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!("{css} never showed {needle:?}; it shows {t:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn screenshot(&self, suffix: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let file = artefact_dir().join(format!(
                "{}{}.png",
                self.name,
                if suffix.is_empty() {
                    String::new()
                } else {
                    format!("-{suffix}")
                }
            ));
            std::fs::write(file, png).unwrap();
        }
    }

    /// Calls a command directly, as code injected into the page could, bypassing the UI.
    pub async fn invoke_raw(&self, cmd: &str, args: serde_json::Value) -> serde_json::Value {
        self.client
            .execute(
                "return window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]).then(\
                   (ok) => ({ ok }), (err) => ({ err }));",
                vec![serde_json::json!(cmd), args],
            )
            .await
            .unwrap()
    }

    /// First run through the UI: creates the administrator; returns the recovery key shown.
    pub async fn first_run(&self) -> String {
        self.el("#fr-username").await;
        self.fill("#fr-username", "admin").await;
        self.fill("#fr-display", "Ada Admin").await;
        self.fill("#fr-pass", ADMIN_PASS).await;
        self.fill("#fr-pass2", ADMIN_PASS).await;
        self.click("#fr-create").await;
        let key = self.wait_text("#recovery-key", "-", 30).await;
        key.trim().to_owned()
    }

    /// From the recovery key screen to the home screen without two-factor sign-in.
    pub async fn skip_to_home(&self) {
        self.click("#rk-saved").await;
        self.click("#rk-continue").await;
        self.el("#enrol-code").await;
        self.client
            .find(Locator::XPath("//button[normalize-space()='Not now']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.el("#home-title").await;
    }

    pub async fn sign_in(&self, user: &str, pass: &str) {
        self.fill("#si-username", user).await;
        self.fill("#si-pass", pass).await;
        self.click("#si-submit").await;
    }

    /// Stops the app like `stop`, but hands back its temporary home (vault, config, data,
    /// cache) so a test can scan what the app left on disk after it exited.
    pub async fn stop_keeping_home(mut self) -> tempfile::TempDir {
        let home = std::mem::replace(&mut self._tmp, tempfile::tempdir().unwrap());
        self.stop().await;
        home
    }

    pub async fn stop(mut self) {
        self.screenshot("").await;
        let _ = self.client.clone().close().await;
        terminate(&mut self.driver);
        if let Some(x) = &mut self.xvfb {
            terminate(x);
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        terminate(&mut self.driver);
        if let Some(x) = &mut self.xvfb {
            terminate(x);
        }
    }
}

/// No plaintext outside the vault: walks the app's home folder (config, data, cache: WebKit's
/// storage lives there) and the temporary folder, skipping the vault, and reads every file
/// written since `started` (folders in the temporary folder only if touched during the test).
/// Fails on any marker. A canary holding the first marker, planted under the home folder first,
/// proves the scan reads what it walks.
/// A new vault at `path` whose administrator "admin" (Ada Admin, `ADMIN_PASS`) is signed in, for
/// tests and benches that seed records through the core before the app starts (cheap KDF: the
/// unlock cost is measured elsewhere).
pub fn seeded_admin(path: &Path) -> clinvault_core::Session {
    use clinvault_core::{vault, InitOptions, VaultDir};
    let dir = VaultDir::new(path.to_path_buf());
    vault::init(
        &dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: Some("Ada Admin".into()),
            passphrase: secrecy::SecretString::from(ADMIN_PASS.to_owned()),
            kdf_cost: clinvault_core::crypto::KdfCost::CHEAP_FOR_TESTS,
            recovery_key_file: None,
        },
    )
    .unwrap();
    seeded_session(path)
}

/// The administrator of a vault `seeded_admin` made, signed in again.
pub fn seeded_session(path: &Path) -> clinvault_core::Session {
    use clinvault_core::{Session, SessionConfig, VaultDir};
    Session::sign_in_with(
        &VaultDir::new(path.to_path_buf()),
        "admin",
        &secrecy::SecretString::from(ADMIN_PASS.to_owned()),
        None,
        SessionConfig {
            device: "e2e".into(),
            clock: std::sync::Arc::new(clinvault_core::clock::SystemClock),
        },
    )
    .unwrap()
}

pub fn assert_no_plaintext_outside_vault(
    label: &str,
    home: &Path,
    vault: &Path,
    started: std::time::SystemTime,
    markers: &[&[u8]],
) {
    let canary = home.join("config").join("scan-canary.txt");
    std::fs::create_dir_all(canary.parent().unwrap()).unwrap();
    let mut planted = b"canary ".to_vec();
    planted.extend_from_slice(markers[0]);
    std::fs::write(&canary, &planted).unwrap();
    let mut scanned = 0;
    let mut hits = Vec::new();
    let mut stack = vec![home.to_path_buf(), std::env::temp_dir()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.starts_with(vault) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let fresh = meta.modified().map(|m| m >= started).unwrap_or(false);
            if meta.is_dir() {
                if path.starts_with(std::env::temp_dir()) && !path.starts_with(home) && !fresh {
                    continue;
                }
                stack.push(path);
            } else if meta.is_file() && meta.len() < 64 * 1024 * 1024 && fresh {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                scanned += 1;
                for m in markers {
                    if bytes.windows(m.len()).any(|w| w == *m) {
                        hits.push(format!(
                            "{} holds {}",
                            path.display(),
                            String::from_utf8_lossy(m)
                        ));
                    }
                }
            }
        }
    }
    eprintln!("[{label}] scanned {scanned} files outside the vault");
    let canary_hit = format!(
        "{} holds {}",
        canary.display(),
        String::from_utf8_lossy(markers[0])
    );
    assert!(
        hits.contains(&canary_hit),
        "the scan missed its canary: {hits:?}"
    );
    hits.retain(|h| *h != canary_hit);
    assert!(scanned > 1);
    assert!(hits.is_empty(), "plaintext outside the vault: {hits:?}");
}
