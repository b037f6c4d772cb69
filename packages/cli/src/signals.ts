import type { Logger } from 'pino';

/**
 * Runs `onStop` once on the first SIGTERM or SIGINT; a second one exits at
 * once with code 1 (the operator insists). Returns a function that removes the
 * handlers.
 */
export function onStopSignal(logger: Logger, onStop: (signal: NodeJS.Signals) => void): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    onStop(signal);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
