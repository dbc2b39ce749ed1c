import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// pdf.js reads these at run time, only for documents that need them: character maps for CJK
// text, the 14 standard fonts a PDF may use without embedding them, and the JPEG 2000 decoder
// (in plain JavaScript, `openjpeg_nowasm_fallback.js`; the CSP allows no WebAssembly) that
// scanned letters often use. Copied from the installed package into the build, served from
// the app's own origin like every other asset.
function pdfjsResources(): Plugin {
  const from = (dir: string) => fileURLToPath(new URL(`./node_modules/pdfjs-dist/${dir}`, import.meta.url));
  const to = (dir: string) => fileURLToPath(new URL(`./dist/pdfjs/${dir}`, import.meta.url));
  return {
    name: 'pdfjs-resources',
    apply: 'build',
    closeBundle() {
      for (const dir of ['cmaps', 'standard_fonts']) cpSync(from(dir), to(dir), { recursive: true });
      for (const file of ['openjpeg_nowasm_fallback.js', 'LICENSE_OPENJPEG', 'LICENSE_PDFJS_OPENJPEG']) {
        cpSync(from(`wasm/${file}`), to(`wasm/${file}`));
      }
    },
  };
}

// The app is served from Tauri's embedded assets: no dev server in the shipped binary, no inline
// scripts (the CSP allows only 'self'), relative asset paths.
export default defineConfig({
  plugins: [svelte(), pdfjsResources()],
  base: './',
  clearScreen: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'safari15',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
