import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';

const target = document.getElementById('app');
if (target) mount(App, { target });

// A file dropped anywhere but a drop zone must not make the webview navigate to it.
for (const type of ['dragover', 'drop']) window.addEventListener(type, (e) => e.preventDefault());
