/**
 * Stops the shared stand-ins. On a 2-core machine Jest runs every test file in its own process, so a socket a test
 * left open (a keep-alive connection between a client and a stand-in that both lived here) would keep Jest from
 * exiting. Whatever sockets remain once the stand-ins are stopped are named on stderr — so the leak is visible — and
 * destroyed, so CI never waits on one.
 */
import { Socket } from 'node:net';
import type { LocalStack } from '../../local/stack';

export default async function globalTeardown(): Promise<void> {
  await ((globalThis as Record<string, unknown>).__LOCAL_STACK__ as LocalStack | undefined)?.stop();
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const leaked = handles.filter((handle): handle is Socket => handle instanceof Socket && handle.remotePort !== undefined);
  for (const socket of leaked) {
    process.stderr.write(`global teardown: a test left a connection open (127.0.0.1:${socket.localPort} → ${socket.remotePort}); closing it\n`);
    socket.destroy();
  }
}
