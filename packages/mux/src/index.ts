export { Session, type SessionCounters, type SessionStats } from './session.ts';
export { Stream, type GrantPacer } from './stream.ts';
export { TokenBucket } from './token-bucket.ts';
export { createSession } from './create-session.ts';
export { DIRECT_TRANSPORT, directTransportOf, type DirectTransport } from './direct-transport.ts';
export { defaultSessionOptions, verifySessionOptions, type SessionOptions } from './config.ts';
export { MuxError, muxErrorCodes, type MuxErrorCode } from './errors.ts';
export { GoAwayCode, FrameType, Flag, HEADER_BYTES, INITIAL_STREAM_WINDOW } from './frame.ts';
export { FrameDecoder } from './decoder.ts';
