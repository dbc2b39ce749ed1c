import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The app is served from Tauri's embedded assets: no dev server in the shipped binary, no inline
// scripts (the CSP allows only 'self'), relative asset paths.
export default defineConfig({
  plugins: [svelte()],
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
