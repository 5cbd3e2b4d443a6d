// blindrelay web client: what the page keeps in the browser, and for how long.
//
// - This tab (sessionStorage, gone when the tab closes): the room the tab is in, as
//   RoomClient.snapshot(), so that a reload comes back as the same member; an invitation
//   read from a link until it is used; lockouts; the sound and notification choices.
// - This browser (localStorage), per room while this browser is a member of it: the same
//   snapshot (userId, resume token, room keys, delivery receipts; the identity's private key
//   itself is in IndexedDB, non-extractable: identity.js), so that
//   the room's link opened in another tab comes back as the same member instead of a
//   second one; and the safety numbers marked as verified. Removed when the member
//   leaves, is removed, or the room is closed or gone; a record untouched for
//   MEMBER_MAX_AGE_MS (its room long expired) is dropped when a page starts. Also, for every
//   room, whether read receipts are switched off.

import { forgetIdentities, purgeIdentities } from './identity.js';

/** sessionStorage: the room this tab is in (RoomClient.snapshot()). */
export const ROOM_KEY = 'blindrelay.room.v1';
/** localStorage: this browser's member of room <id>, `MEMBER_KEY + id`. */
const MEMBER_KEY = 'blindrelay.member.v1:';
/** localStorage: safety numbers marked as verified, {"<room>/<member>": its public key}. */
const VERIFIED_KEY = 'blindrelay.verified.v1';
const MEMBER_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** localStorage: "off" when this browser sends no read receipts (and shows none). */
const RECEIPTS_KEY = 'blindrelay.receipts.v1';

function read(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

function write(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or refused (a private window): the page still works, it just forgets.
  }
}

function remove(storage, key) {
  try {
    storage.removeItem(key);
  } catch {
    // Storage refused: there is nothing to remove.
  }
}

export function loadSession(key) {
  return read(sessionStorage, key);
}

export function saveSession(key, value) {
  write(sessionStorage, key, value);
}

/** The room this tab was in (for a reload), or null. */
export function tabRoom() {
  const saved = read(sessionStorage, ROOM_KEY);
  return saved?.v === 1 ? saved : null;
}

/** This browser's member of room `sessionId` (for another tab), or null. */
export function memberOf(sessionId) {
  const saved = read(localStorage, MEMBER_KEY + sessionId);
  return saved?.v === 1 && saved.sessionId === sessionId ? saved : null;
}

/** Keeps a snapshot for a reload of this tab and for other tabs of this browser. */
export function saveRoom(snapshot) {
  write(sessionStorage, ROOM_KEY, snapshot);
  write(localStorage, MEMBER_KEY + snapshot.sessionId, { ...snapshot, savedAt: Date.now() });
}

/** This tab is no longer in a room (it went to another); the browser's member stays. */
export function leaveTab() {
  remove(sessionStorage, ROOM_KEY);
}

/** This browser is no longer a member of `sessionId`: the tab and every trace of it go. */
export function forgetRoom(sessionId) {
  const saved = tabRoom();
  if (!sessionId || saved?.sessionId === sessionId) remove(sessionStorage, ROOM_KEY);
  if (!sessionId) return;
  remove(localStorage, MEMBER_KEY + sessionId);
  forgetIdentities(sessionId);
  const marks = verifiedMarks();
  for (const k of Object.keys(marks)) if (k.startsWith(`${sessionId}/`)) delete marks[k];
  write(localStorage, VERIFIED_KEY, marks);
}

/** Whether this browser sends read receipts (on unless switched off in More). */
export function receiptsOn() {
  return read(localStorage, RECEIPTS_KEY) !== 'off';
}

export function setReceiptsOn(on) {
  if (on) remove(localStorage, RECEIPTS_KEY);
  else write(localStorage, RECEIPTS_KEY, 'off');
}

export function verifiedMarks() {
  return read(localStorage, VERIFIED_KEY) ?? {};
}

/** Marks (a public key) or unmarks (null) member `userId`'s safety number in `sessionId`. */
export function setVerifiedMark(sessionId, userId, publicKey) {
  const marks = verifiedMarks();
  if (publicKey) marks[`${sessionId}/${userId}`] = publicKey;
  else delete marks[`${sessionId}/${userId}`];
  write(localStorage, VERIFIED_KEY, marks);
}

/** Whether a `storage` event is another tab's change of this browser's member of `sessionId`. */
export function isMemberChange(event, sessionId) {
  return event.storageArea === localStorage && event.key === MEMBER_KEY + sessionId;
}

/** Drops members whose rooms have long expired, and the verified marks of rooms not kept. */
export function purge() {
  const now = Date.now();
  const kept = new Set();
  let keys;
  try {
    keys = Array.from({ length: localStorage.length }, (_, i) => localStorage.key(i));
  } catch {
    return; // no storage: nothing kept, nothing to drop
  }
  for (const key of keys) {
    if (!key?.startsWith(MEMBER_KEY)) continue;
    const saved = read(localStorage, key);
    if (!(now - (saved?.savedAt ?? 0) < MEMBER_MAX_AGE_MS)) remove(localStorage, key);
    else kept.add(key.slice(MEMBER_KEY.length));
  }
  purgeIdentities(kept);
  const marks = verifiedMarks();
  let changed = false;
  for (const k of Object.keys(marks)) {
    if (!kept.has(k.split('/')[0])) {
      delete marks[k];
      changed = true;
    }
  }
  if (changed) write(localStorage, VERIFIED_KEY, marks);
}
