/**
 * The web console (console/) mounted like a transport: its options come from the graph's `transports.console`, its
 * routes go on its port through the HTTP hub, and it is handed the transport context. It lives beside the protocols,
 * not among them, so only this file sees both.
 */
import { CONSOLE_DEFAULT_PORT, CONSOLE_SCHEMA, type ConsoleOptions } from '../console/context.js';
import { defineTransport } from '../transports/contract.js';

export const consoleTransport = defineTransport<ConsoleOptions>({
  name: 'console',
  schema: CONSOLE_SCHEMA,
  defaultPort: () => CONSOLE_DEFAULT_PORT,
  // Its code is loaded when a graph serves it, as a protocol's is (transports/contract.ts, mountFrom).
  mount: async (spec, ctx) => {
    const { CONSOLE_ERRORS, WebConsole } = await import('../console/index.js');
    const web = new WebConsole(spec, ctx);
    ctx.hub.mount(spec.port, {
      owner: spec.id, prefixes: ['/'], shape: CONSOLE_ERRORS,
      routes: (app) => web.routes(app),
      countError: (status, code) => web.countError(status, code),
    });
    return web;
  },
});
