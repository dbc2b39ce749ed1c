//! How WebKitGTK draws the window. By default it draws with the GPU through OpenGL. On a machine
//! without one (a virtual machine, many remote-desktop sessions, CI under Xvfb) Mesa answers with
//! llvmpipe, a software OpenGL, and then frames come late: on the 2-core development VM the
//! frame after a patient search's results were in the page came 70–1,000 ms later while the
//! page itself was idle, against 10–50 ms with WebKit's own CPU renderer (measured with
//! `cargo bench -p clinvault-desktop --bench ui`). So where no GPU render node exists, ask for
//! the CPU renderer. A machine with a GPU keeps WebKit's default, and a value the user set for
//! the variable is left alone.

use std::path::Path;

const CPU_RENDERING: &str = "WEBKIT_SKIA_ENABLE_CPU_RENDERING";

/// Must run before WebKit starts (first thing in `run`, while the process has one thread).
pub fn choose() {
    if cfg!(target_os = "linux")
        && std::env::var_os(CPU_RENDERING).is_none()
        && !has_render_node(Path::new("/dev/dri"))
    {
        std::env::set_var(CPU_RENDERING, "1");
    }
}

/// A DRI render node (`renderD128`, ...) is what a GPU driver offers for drawing.
fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::has_render_node;

    #[test]
    fn a_render_node_means_a_gpu_and_anything_else_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let dri = dir.path().join("dri");
        assert!(!has_render_node(&dri), "no /dev/dri at all");
        std::fs::create_dir(&dri).unwrap();
        std::fs::write(dri.join("card0"), b"").unwrap();
        assert!(
            !has_render_node(&dri),
            "a display card without a render node"
        );
        std::fs::write(dri.join("renderD128"), b"").unwrap();
        assert!(has_render_node(&dri));
    }
}
