// A human sentence for every error code of the server (docs/protocol.md "Error codes" and the HTTP
// routes) and for the client's own failures.

export const ERROR_TEXT = {
  // Socket.IO acks and `session-error`
  SESSION_NOT_FOUND: 'This room does not exist (any more). Ask for a new link, or create a new room.',
  INVALID_KEY: 'This link’s key does not match the room: it may have been copied incompletely, or replaced by a new link. Ask for the link again.',
  INVALID_PASSWORD: 'Wrong password. Check it with the person who invited you, then try again.',
  SESSION_NOT_ACTIVE: 'The room’s creator has not opened the room yet. Try again in a moment.',
  SESSION_FULL: 'This private room already has two people in it, so you cannot join.',
  BAD_REQUEST: 'The server refused a malformed request. Reload the page and try again.',
  NOT_IN_SESSION: 'You are no longer in this room. Open the link again to rejoin.',
  FORBIDDEN: 'You are not allowed to do that in this room.',
  PAYLOAD_TOO_LARGE: 'That is too large for the server to relay.',
  LIMIT_REACHED: 'The server is full (too many rooms or members). Try again later.',
  SESSION_EXPIRED: 'This room expired after a long time without activity. Create a new room.',
  RATE_LIMITED: 'The server is refusing this for a while after too many attempts. Wait a few minutes, then try again.',
  REMOVED: 'You were removed from this room.',
  UNAVAILABLE: 'The server cannot reach its storage just now. Try again in a moment.',
  RESUME_TOKEN_REQUIRED: 'This page lost the proof that you are this member (another browser, or its storage was cleared). Open the link again to join as a new member.',
  UNKNOWN_MESSAGE: 'The server does not know that message (it may have been dropped from the room’s history).',
  // HTTP reservation
  SESSION_EXISTS: 'That room name is already taken. Try again.',
  // Client-side
  INSECURE_CONTEXT: 'Encryption is unavailable: this page must be opened over HTTPS (or on localhost). Nothing can be sent.',
  CONNECTION: 'Cannot reach the server. Check your connection; the page keeps retrying.',
  TIMEOUT: 'The server did not answer in time. Try again.',
  BAD_LINK: 'This link is incomplete or damaged. Ask for the link again.',
  FILE_TOO_LARGE: 'That file is too large.',
  DECRYPT_FAILED: 'A message could not be decrypted. Compare safety numbers: someone may have tampered with it.',
  PASSWORD_MISMATCH: 'The two passwords differ.',
  UNKNOWN: 'Something went wrong. Reload the page and try again.',
};

/**
 * The sentence shown for an error. `detail`, a sentence the page wrote about this very case
 * ("“holiday.mov” is 5.4 MiB; files up to 5.0 MiB can be sent."), comes first; then the
 * page's own sentence for the code; then `message`, the server's own words, for a code this
 * page does not know.
 */
export function errorText(code, { detail, message } = {}) {
  return detail || ERROR_TEXT[code] || message || ERROR_TEXT.UNKNOWN;
}

/** What the page needs to say about `err` (a CodedError, or anything thrown). */
export function errorInfo(err) {
  return {
    code: err?.code ?? 'UNKNOWN',
    message: err?.serverMessage,
    detail: err?.detail,
    retryAfterMs: err?.retryAfterMs,
  };
}

/** "4 minutes 52 seconds": a wait in plain words (rounded up to the second). */
export function formatWait(ms) {
  const total = Math.max(1, Math.ceil(ms / 1000));
  const unit = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const parts = [];
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) parts.push(unit(h, 'hour'));
  if (m) parts.push(unit(m, 'minute'));
  if (s && !h) parts.push(unit(s, 'second'));
  return parts.join(' ');
}

/**
 * An error carrying a protocol or client error code; `message` is the server's own words,
 * `detail` a sentence of the page's about this very case, `retryAfterMs` how long to wait
 * when one applies.
 */
export class CodedError extends Error {
  constructor(code, { message, detail, retryAfterMs } = {}) {
    super(errorText(code, { detail, message }));
    this.code = code;
    if (message) this.serverMessage = message;
    if (detail) this.detail = detail;
    if (Number.isFinite(retryAfterMs) && retryAfterMs > 0) this.retryAfterMs = retryAfterMs;
  }
}
