// blindrelay web client: every cryptographic operation, with WebCrypto only.
//
// What the server sees: public keys (base64 SPKI of ECDH P-256 keys), ciphertexts, wrapped
// group keys and, for password rooms, a PBKDF2 digest of the password. It never sees a
// plaintext, a private key, a group key, a password or the link secret.
//
// Keys used:
// - identity: one ECDH P-256 key pair per member and room, made in the browser.
// - room secret: 32 random bytes carried in the link's #fragment (never sent to the
//   server), or, in password rooms, derived from the password. It is the HKDF salt of
//   every derived key, so a server that swaps public keys still cannot read anything
//   without the link (or the password).
// - pair key (private and password rooms): ECDH(mine, peer's) -> HKDF-SHA-256 -> AES-256-GCM.
// - room key (group rooms): 32 random bytes, AES-256-GCM, made by the creator, wrapped for
//   each member with a pair-derived wrapping key, replaced (new generation) when a member
//   leaves.

const enc = new TextEncoder();
const dec = new TextDecoder();

export const PROTOCOL_VERSION = 1;
/** PBKDF2 iterations for room passwords (OWASP 2023 figure for PBKDF2-HMAC-SHA256). */
export const PBKDF2_ITERATIONS = 600_000;

const subtle = globalThis.crypto?.subtle;

/** WebCrypto exists only in secure contexts (https:// or http://localhost). */
export function cryptoAvailable() {
  return Boolean(globalThis.isSecureContext && subtle && globalThis.crypto.getRandomValues);
}

// ---- encodings ----

export function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** Standard base64 (used for SPKI public keys). */
export function toBase64(bytes) {
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(s);
}

export function fromBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** base64url without padding: only [A-Za-z0-9_-], valid in ids and URLs. */
export function toBase64Url(bytes) {
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
}

/** A random identifier of `bytes` random bytes (16 bytes = 128 bits -> 22 characters). */
export function randomId(bytes = 16) {
  return toBase64Url(randomBytes(bytes));
}

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- identity keys ----

const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

/**
 * A new member identity. The private key is extractable only so that a reload of the same
 * tab can keep its identity (sessionStorage, cleared when the tab closes).
 */
export async function generateIdentity() {
  const pair = await subtle.generateKey(ECDH, true, ['deriveBits']);
  const spki = new Uint8Array(await subtle.exportKey('spki', pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: toBase64(spki) };
}

export async function exportIdentity(identity) {
  return { privateJwk: await subtle.exportKey('jwk', identity.privateKey), publicKey: identity.publicKey };
}

export async function importIdentity(saved) {
  const privateKey = await subtle.importKey('jwk', saved.privateJwk, ECDH, true, ['deriveBits']);
  return { privateKey, publicKey: saved.publicKey };
}

/** Imports a member's public key (base64 SPKI) as sent through the server. */
export async function importPublicKey(b64) {
  if (typeof b64 !== 'string' || b64.length > 4096) throw new Error('bad public key');
  return subtle.importKey('spki', fromBase64(b64), ECDH, false, []);
}

/**
 * An AES-256-GCM key shared by two members: ECDH, then HKDF-SHA-256 salted with the room
 * secret, bound to the purpose, the room and both public keys (sorted, so both sides agree).
 */
export async function derivePairKey({ privateKey, myPublicKey, peerPublicKey, peerKey, roomSecret, sessionId, purpose }) {
  const bits = await subtle.deriveBits({ name: 'ECDH', public: peerKey }, privateKey, 256);
  const ikm = await subtle.importKey('raw', bits, 'HKDF', false, ['deriveKey']);
  const [a, b] = [myPublicKey, peerPublicKey].sort();
  const info = enc.encode(`blindrelay/v${PROTOCOL_VERSION}/${purpose}|${sessionId}|${a}|${b}`);
  return subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: roomSecret, info },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

// ---- AES-GCM ----

async function seal(key, plaintext, aad, { chunked = false } = {}) {
  const iv = randomBytes(12);
  const ct = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode(aad) }, key, plaintext));
  return { iv: toBase64Url(iv), ct: chunked ? chunks(ct) : toBase64Url(ct) };
}

/**
 * A file's ciphertext travels as binary attachments rather than as base64url: a quarter
 * fewer bytes on the wire, and one WebSocket frame per chunk, so the page can follow the
 * upload's progress. At most MAX_CHUNKS of them: socket.io-client refuses a packet with
 * more than 10 attachments, and the server relays these to other clients as they came.
 */
export const MAX_CHUNKS = 8;
const MIN_CHUNK_BYTES = 64 * 1024;

function chunks(bytes) {
  const size = Math.max(MIN_CHUNK_BYTES, Math.ceil(bytes.length / MAX_CHUNKS));
  const out = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

const isBinary = (b) => b instanceof ArrayBuffer || ArrayBuffer.isView(b);

function asBytes(b) {
  return b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A ciphertext as sent: base64url text, or binary chunks (joined in order). */
function ciphertextBytes(ct) {
  if (typeof ct === 'string') return fromBase64Url(ct);
  return concatBytes(...ct.map(asBytes));
}

async function open(key, { iv, ct }, aad) {
  const pt = await subtle.decrypt(
    { name: 'AES-GCM', iv: fromBase64Url(iv), additionalData: enc.encode(aad) },
    key,
    ciphertextBytes(ct),
  );
  return new Uint8Array(pt);
}

// ---- message payloads ----

/**
 * The plaintext of a message: a 4-byte big-endian length, a JSON header, then the raw bytes
 * of a file (none for text). Files are not base64-encoded twice this way.
 */
export function encodeContent(meta, body = new Uint8Array(0)) {
  const head = enc.encode(JSON.stringify(meta));
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, head.length);
  return concatBytes(len, head, body);
}

export function decodeContent(bytes) {
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  const meta = JSON.parse(dec.decode(bytes.subarray(4, 4 + n)));
  return { meta, body: bytes.subarray(4 + n) };
}

/** What the ciphertext is bound to: a server that relabels a message breaks its tag. */
function messageAad({ sessionId, from, to, id, type, gen }) {
  return `blindrelay/v${PROTOCOL_VERSION}/msg|${sessionId}|${from}|${to}|${id}|${type}|${gen}`;
}

/**
 * Encrypts a message. `gen` is the group key generation (0 for a pair key). The result is
 * the `encrypted` field of `send-message`, relayed by the server byte for byte.
 */
/** `chunked`: the ciphertext as binary chunks (files), else base64url text. */
export async function encryptMessage(key, content, ctx, { chunked = false } = {}) {
  const sealed = await seal(key, content, messageAad(ctx), { chunked });
  return {
    v: PROTOCOL_VERSION,
    alg: ctx.gen > 0 ? 'A256GCM-group' : 'ECDH-P256-HKDF-A256GCM',
    gen: ctx.gen,
    ...sealed,
  };
}

export async function decryptMessage(key, encrypted, ctx) {
  return open(key, encrypted, messageAad(ctx));
}

/** Whether a relayed `encrypted` value has the shape this client writes. */
export function isEnvelope(e) {
  const ct = e?.ct;
  const ctOk = typeof ct === 'string' || (Array.isArray(ct) && ct.length > 0 && ct.every(isBinary));
  return Boolean(e && typeof e === 'object' && e.v === PROTOCOL_VERSION && typeof e.iv === 'string'
    && ctOk && Number.isInteger(e.gen) && e.gen >= 0);
}

// ---- group room keys ----

export async function newRoomKey() {
  const raw = randomBytes(32);
  return { raw, key: await importRoomKey(raw) };
}

export function importRoomKey(raw) {
  return subtle.importKey('raw', raw, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

function wrapAad({ sessionId, gen, by, forUser }) {
  return `blindrelay/v${PROTOCOL_VERSION}/wrap|${sessionId}|${gen}|${by}|${forUser}`;
}

/** The creator wraps generation `gen` of the room key for one member. */
export async function wrapRoomKey(wrappingKey, raw, ctx) {
  const sealed = await seal(wrappingKey, raw, wrapAad(ctx));
  return { v: PROTOCOL_VERSION, gen: ctx.gen, by: ctx.by, ...sealed };
}

export async function unwrapRoomKey(wrappingKey, wrapped, ctx) {
  return open(wrappingKey, wrapped, wrapAad({ ...ctx, gen: wrapped.gen, by: wrapped.by }));
}

export function isWrappedKey(w) {
  return Boolean(w && typeof w === 'object' && w.v === PROTOCOL_VERSION && Number.isInteger(w.gen) && w.gen > 0
    && typeof w.by === 'string' && typeof w.iv === 'string' && typeof w.ct === 'string');
}

// ---- passwords ----

/**
 * From a room password: `digest` (base64url, what the server compares; the creator's
 * authKey is "<random>:<digest>", joiners send "<id>:password:<digest>") and `secret`
 * (the room secret, never sent). Both come from one PBKDF2-SHA-256 run salted with the
 * session id; the server holding the digest cannot compute the secret without the password.
 */
export async function derivePassword(password, sessionId) {
  const base = await subtle.importKey('raw', enc.encode(password.normalize('NFC')), 'PBKDF2', false, ['deriveBits']);
  const master = await subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode(sessionId), iterations: PBKDF2_ITERATIONS },
    base,
    256,
  );
  const hkdf = await subtle.importKey('raw', master, 'HKDF', false, ['deriveBits']);
  const expand = async (label) => new Uint8Array(await subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(`blindrelay/v${PROTOCOL_VERSION}/password-${label}`) },
    hkdf,
    256,
  ));
  return { digest: toBase64Url(await expand('digest')), secret: await expand('secret') };
}

// ---- safety numbers ----

/**
 * A short fingerprint of two public keys that both people see identically: SHA-256 of the
 * two SPKI keys (sorted), shown as six groups of five digits. Comparing it out of band
 * (in person, by phone) proves nobody swapped the keys in between.
 */
export async function safetyNumber(publicKeyA, publicKeyB) {
  const [a, b] = [publicKeyA, publicKeyB].sort();
  const hash = new Uint8Array(await subtle.digest('SHA-256', concatBytes(fromBase64(a), fromBase64(b))));
  const groups = [];
  for (let i = 0; i < 30; i += 5) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + hash[i + j];
    groups.push(String(n % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}
