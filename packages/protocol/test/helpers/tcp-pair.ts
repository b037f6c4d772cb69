import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';

/** Both ends of one real TCP connection on 127.0.0.1; `close()` destroys them and resolves once the listener has stopped. */
export async function tcpPair(): Promise<{ near: net.Socket; far: net.Socket; close(): Promise<void> }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const near = net.connect((listener.address() as AddressInfo).port, '127.0.0.1');
  const [[far]] = await Promise.all([accepted, once(near, 'connect')]);
  return {
    near,
    far,
    close: () => {
      near.destroy();
      far.destroy();
      return new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
