// blindrelay web client: a member's identity key pair, kept so that the browser can come
// back as the same member (a reload, the room opened in another tab) without the private
// key ever being readable by script.
//
// The private key is made with `extractable: false` and kept as a CryptoKey in IndexedDB
// (structured clone keeps a CryptoKey as it is: no script, this page's included, can export
// its bytes). The public key is exportable (it is sent). The snapshot storage.js keeps holds
// only `{publicKey, store: "idb"}`: a pointer, no key material. Older pages kept an
// exportable JWK in the snapshot: it is moved here once, as a non-extractable key, and the
// JWK goes. Where IndexedDB is refused (some private windows), the key is kept the old way,
// in the snapshot, so that a reload still works.

import * as C from './crypto.js';

const DB_NAME = 'blindrelay';
const DB_VERSION = 1;
const STORE = 'identities';
const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

let dbPromise = null;

function openDb() {
  dbPromise ??= new Promise((resolve, reject) => {
    let req;
    try {
      req = indexedDB.open(DB_NAME, DB_VERSION);
    } catch (err) {
      reject(err);
      return;
    }
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another page deleting the database (or a newer version) closes this one.
      db.onversionchange = () => {
        db.close();
        dbPromise = null;
      };
      resolve(db);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('IndexedDB blocked'));
  });
  return dbPromise.catch((err) => {
    dbPromise = null;
    throw err;
  });
}

async function tx(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error ?? new Error('aborted'));
  });
}

const keyOf = (sessionId, userId) => `${sessionId}/${userId}`;

async function keep(sessionId, userId, privateKey, publicKey) {
  await tx('readwrite', (s) => s.put({ privateKey, publicKey, savedAt: Date.now() }, keyOf(sessionId, userId)));
}

/**
 * A new identity for member `userId` of room `sessionId`: `{identity, saved}`, where
 * `identity` is {privateKey, publicKey} and `saved` what the snapshot holds.
 */
export async function newIdentity(sessionId, userId) {
  try {
    // The private key cannot be exported; the public key of a pair always can (WebCrypto).
    const pair = await crypto.subtle.generateKey(ECDH, false, ['deriveBits']);
    const publicKey = C.toBase64(new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey)));
    await keep(sessionId, userId, pair.privateKey, publicKey);
    return { identity: { privateKey: pair.privateKey, publicKey }, saved: { publicKey, store: 'idb' } };
  } catch {
    // No IndexedDB here: the old way (an exportable key in the snapshot), so a reload still works.
    const identity = await C.generateIdentity();
    return { identity, saved: await C.exportIdentity(identity) };
  }
}

/**
 * The identity a snapshot points to: `{identity, saved, migrated}`, or null when this
 * browser no longer holds its private key (IndexedDB cleared or evicted). A snapshot with
 * a JWK (an older page's) is moved to IndexedDB, non-extractable; `migrated` then says that
 * the snapshot must be saved again (without the JWK).
 */
export async function loadIdentity(sessionId, userId, saved) {
  if (!saved?.publicKey) return null;
  if (saved.privateJwk) {
    let privateKey;
    try {
      privateKey = await crypto.subtle.importKey('jwk', saved.privateJwk, ECDH, false, ['deriveBits']);
      await keep(sessionId, userId, privateKey, saved.publicKey);
    } catch {
      // No IndexedDB: keep using the JWK, as before.
      return { identity: await C.importIdentity(saved), saved, migrated: false };
    }
    return { identity: { privateKey, publicKey: saved.publicKey }, saved: { publicKey: saved.publicKey, store: 'idb' }, migrated: true };
  }
  let entry;
  try {
    entry = await tx('readonly', (s) => s.get(keyOf(sessionId, userId)));
  } catch {
    return null;
  }
  if (!(entry?.privateKey instanceof CryptoKey) || entry.publicKey !== saved.publicKey) return null;
  return { identity: { privateKey: entry.privateKey, publicKey: entry.publicKey }, saved, migrated: false };
}

/** Drops the keys of room `sessionId` (the member left, was removed, the room ended). */
export async function forgetIdentities(sessionId) {
  try {
    await tx('readwrite', (s) => s.delete(IDBKeyRange.bound(`${sessionId}/`, `${sessionId}/\uffff`)));
  } catch {
    // Nothing kept, nothing to drop.
  }
}

/**
 * Drops the keys of every room not in `keptRooms` (a Set of session ids), once they are a
 * day old: a room being created in another tab keeps its key before its snapshot.
 */
export async function purgeIdentities(keptRooms) {
  try {
    const keys = await tx('readonly', (s) => s.getAllKeys());
    const entries = await tx('readonly', (s) => s.getAll());
    const old = Date.now() - 24 * 3600 * 1000;
    const stale = (keys ?? []).filter((k, i) => !keptRooms.has(String(k).split('/')[0]) && !(entries?.[i]?.savedAt > old));
    if (stale.length) await tx('readwrite', (s) => { for (const k of stale) s.delete(k); });
  } catch {
    // Nothing kept, nothing to drop.
  }
}
