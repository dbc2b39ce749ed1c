//! Builds the frontend (ui/ → ui/dist, embedded by `generate_context!`), then runs tauri-build
//! with the app's own commands declared, so each must be granted to a window by a capability in
//! src-tauri/capabilities/ (Tauri would otherwise allow every app command to every window).

use std::path::Path;
use std::process::Command;

type BuildResult = Result<(), Box<dyn std::error::Error>>;

fn build_ui() -> BuildResult {
    for watched in [
        "ui/src",
        "ui/isolation",
        "ui/index.html",
        "ui/package.json",
        "ui/vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-env-changed=CLINVAULT_SKIP_UI_BUILD");
    if std::env::var_os("CLINVAULT_SKIP_UI_BUILD").is_some()
        && Path::new("ui/dist/index.html").exists()
    {
        return Ok(());
    }
    if !Path::new("ui/node_modules").exists() {
        return Err(
            "ui/node_modules is missing: run scripts/setup-deps.sh (or `npm install` in ui/) first"
                .into(),
        );
    }
    let status = Command::new("npm")
        .args(["run", "--silent", "build"])
        .current_dir("ui")
        .status()
        .map_err(|e| format!("cannot run npm to build the frontend: {e}"))?;
    if !status.success() {
        return Err(format!("the frontend build (npm run build in ui/) failed: {status}").into());
    }
    Ok(())
}

fn main() -> BuildResult {
    build_ui()?;
    println!("cargo:rerun-if-changed=src-tauri/commands.txt");
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    let list = std::fs::read_to_string("src-tauri/commands.txt")?;
    let names: Vec<&'static str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| &*Box::leak(l.to_owned().into_boxed_str()))
        .collect();
    let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .capabilities_path_pattern("./src-tauri/capabilities/**/*")
            .app_manifest(tauri_build::AppManifest::new().commands(names)),
    )?;
    Ok(())
}
