import type { Duplex } from 'node:stream';

/** The errors {@link readLine} rejects with: each reader of a line protocol names its own codes. */
export interface LineErrors {
  /** No newline within `maxBytes`. */
  tooLarge(maxBytes: number): Error;
  /** The stream ended, closed or failed (`cause`) before the newline. */
  cut(cause?: Error): Error;
}

/**
 * Reads one `\n`-terminated line (without the newline) from `stream`, at most
 * `maxBytes` long. Bytes after the newline are unshifted back into the
 * stream, so the next reader sees them intact. Rejects with `errors`.
 */
export function readLine(stream: Duplex, maxBytes: number, errors: LineErrors): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const cleanup = (): void => {
      done = true;
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
    };
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onReadable = (): void => {
      if (done) return;
      let chunk: Buffer | string | null;
      while ((chunk = stream.read() as Buffer | string | null) !== null) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        const nl = bytes.indexOf(0x0a);
        if (nl === -1) {
          chunks.push(bytes);
          total += bytes.length;
          if (total > maxBytes) {
            fail(errors.tooLarge(maxBytes));
            return;
          }
          continue;
        }
        if (total + nl > maxBytes) {
          fail(errors.tooLarge(maxBytes));
          return;
        }
        chunks.push(bytes.subarray(0, nl));
        const rest = bytes.subarray(nl + 1);
        cleanup();
        if (rest.length > 0) stream.unshift(rest);
        resolve(Buffer.concat(chunks).toString('utf8'));
        return;
      }
    };
    const onEnd = (): void => {
      if (!done) fail(errors.cut());
    };
    const onError = (err: Error): void => fail(errors.cut(err));
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
  });
}
