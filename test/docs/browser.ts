/**
 * A document's page code in a real browser: headless Debian Chromium driven by playwright-core, and a small web
 * server that serves the page from an origin of its own (as a page of the document's readers would be, not from
 * Sightline's), recording what the page logs and any error it throws.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.SIGHTLINE_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...extraArgs] });
}

export interface Site { url: string; close(): Promise<void> }

/** Serves `files` (path → body; `/` is the page) as UTF-8, with the content type of each file's extension. */
export async function serveSite(files: Record<string, string | Buffer>): Promise<Site> {
  const types: Record<string, string> = { js: 'text/javascript', html: 'text/html', jpg: 'image/jpeg', png: 'image/png' };
  const server = http.createServer((req, res) => {
    const body = files[req.url ?? '/'];
    if (body === undefined) { res.writeHead(404).end(); return; }
    const ext = (req.url === '/' ? 'html' : req.url!.split('.').pop()) ?? 'html';
    res.writeHead(200, { 'content-type': `${types[ext] ?? 'application/octet-stream'}; charset=utf-8` }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A page that keeps its console lines and page errors. */
export async function openPage(browser: Browser): Promise<{ page: Page; logged: string[]; problems: string[] }> {
  const page = await browser.newPage();
  const logged: string[] = [];
  const problems: string[] = [];
  page.on('console', (m) => logged.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  return { page, logged, problems };
}
