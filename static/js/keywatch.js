// blindrelay web client: a person who comes back with another key. No DOM.
//
// The server knows members by userId. A member whose browser lost its key but kept its
// userId and resume token rejoins as the same member with a new key: the server tells the
// room `public-key-changed`, and client.js flags that member. A person who cleared the
// browser (or opened the link in another browser) has neither: the server makes a new
// member, which is all it can honestly do. The page then sees someone with the name of a
// member it knew, with another key. Whether it is the same person nobody can tell without
// comparing safety numbers, so:
//   - while the earlier member is still here, they are two members with one name: both are
//     marked with their safety numbers (names.js), and the room is told loudly;
//   - once the earlier member is gone, the newcomer takes its place: one member, shown
//     with "<name>'s safety number changed — verify again", and the mark "verified" of the
//     old key goes (the new key was never compared).

import { skeletons } from './names.js';

/** Whether two names look the same (the skeletons of names.js). */
export function sameName(a, b) {
  if (!a || !b) return false;
  const sa = skeletons(a);
  for (const k of skeletons(b)) if (k && sa.has(k)) return true;
  return false;
}

/**
 * The member that `m` (just seen with its first key) may be, under another key: the most
 * recent member with a name like `m`'s and another key that no one has taken the place of
 * yet, never `me`. Null when there is none.
 */
export function earlierSelf(members, m, me) {
  if (!m.displayName || !m.publicKey) return null;
  let found = null;
  for (const x of members.values()) {
    if (x === m || x.userId === me || !x.publicKey || x.publicKey === m.publicKey || x.succeededBy) continue;
    if (!sameName(x.displayName, m.displayName)) continue;
    if (!found || (x.joinedAt ?? 0) > (found.joinedAt ?? 0)) found = x;
  }
  return found;
}

/** The sentences a page says, for `name`'s change of key. */
export const KEY_CHANGED = (name) => `${name}'s safety number changed — verify again`;
export const CAME_BACK = (name) => `${KEY_CHANGED(name)}: “${name}” came back as a new member with a new key (from another browser, or after clearing this one, or it is someone else using the name). Compare the safety number before you trust them.`;
export const SECOND_ONE = (name, tag) => `Another “${name}” joined, with a different safety number (${tag}…) from the “${name}” already here: tell them apart by the safety number, not the name.`;
