// blindrelay web client: disappearing messages. No DOM.
//
// The room's creator sets a timer (More, "Disappearing messages"): a `timer` message
// (kinds.js) `{kind: "timer", seconds, at}`, encrypted and padded like any text, so the
// server learns nothing of it. Pages apply it only when it comes from the room's creator
// (its userId: the `by` of the group room keys it hands out, or the link's `c`), the newest
// `at` winning; other members' timer messages are ignored.
//
// Every text carries, inside the encryption, the timer in force on its sender's page when
// it was sent (`ttl`). A message disappears from every page once it is older than that
// (counted from when the page saw it sent or arrive, or for a replayed history from the
// server's timestamp): removed from the log, from what the page holds of it
// (edits, reactions, quotes in replies), and from what the browser keeps (its delivery
// receipts in the snapshot). A later change of the timer neither shortens nor lengthens
// the life of messages sent before it. A message without a ttl of its own (a file, an
// older page's text) lives as long as the timer that was in force when it was sent, as
// far as this page knows the timer's history. A page replaying the history (a reload, a
// late joiner, another tab) drops the expired ones as it decrypts them.
//
// The creator's page sends the timer again to whoever could not read it: in a group room
// after each new room key (a newcomer cannot read what was said before), in a private
// room to each new peer. The same setting sent again changes nothing.

import { TIMER_CHOICES } from './kinds.js';

/** A timer in words: "5 minutes", "1 hour", "1 day"... ("off" for 0). */
export function timerWords(seconds) {
  if (!seconds) return 'off';
  const units = [[7 * 24 * 3600, 'week'], [24 * 3600, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, unit] of units) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

/** The timer the room header shows. */
export const timerBanner = (seconds) => `Messages disappear after ${timerWords(seconds)}`;

/** What the page says of a timer and its limits (the header's tooltip, the More menu). */
export const TIMER_EXPLAINED = 'Set by the room’s creator. Each page removes a message once it is older than the timer it was sent under. The server never learns the timer and keeps its own limits: the last 500 messages, and a room with nobody in it goes after 30 minutes. Anyone can still copy a message before it goes.';

const KEPT_CHANGES = 16;
/** setTimeout's longest delay; a later expiry is checked again then. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class Disappearing {
  /**
   * @param {import('./client.js').RoomClient} client
   * @param {Array<{seconds, at}>} [saved]  the timer's changes from a snapshot
   */
  constructor(client, saved) {
    this.c = client;
    this.changes = (Array.isArray(saved) ? saved : [])
      .filter((x) => TIMER_CHOICES.includes(x?.seconds) && Number.isSafeInteger(x?.at))
      .map(({ seconds, at }) => ({ seconds, at }))
      .sort((a, b) => a.at - b.at);
    /** Keys of the messages removed: a replayed history does not bring them back. */
    this.gone = new Set();
    /** Private rooms: the peers the creator's page told the timer. */
    this.told = new Set();
    this.timer = null;
    // Whatever is added or changes (my own messages, their server timestamps) may be the
    // next to go: looked at once after the events of a task.
    client.addEventListener('message', ({ detail: { record: r } }) => {
      // My message's life starts when I send it (its local time, before the server's).
      if (r.bornAt === undefined && r.mine && r.state !== 'sent') r.bornAt = r.timestamp;
      if (this.queued) return;
      this.queued = true;
      queueMicrotask(() => {
        this.queued = false;
        this.schedule();
      });
    });
  }

  /** The timer in force (seconds, 0 = off). */
  get seconds() {
    return this.changes.at(-1)?.seconds ?? 0;
  }

  get setAt() {
    return this.changes.at(-1)?.at ?? 0;
  }

  /** The timer that was in force at `t` (as far as this page knows). */
  inForceAt(t) {
    let seconds = 0;
    for (const x of this.changes) if (x.at <= t) seconds = x.seconds;
    return seconds;
  }

  /** For a snapshot. */
  saved() {
    return this.changes.map(({ seconds, at }) => ({ seconds, at }));
  }

  /**
   * Sets the timer for everyone: only the creator's page offers it, and every page (this
   * one included) ignores a timer message from anyone else, whatever a page sends.
   */
  set(seconds) {
    if (!TIMER_CHOICES.includes(seconds) || this.c.closed) return;
    if (this.c.creatorId === this.c.me && seconds === this.seconds) return;
    const at = Math.max(Date.now(), this.setAt + 1);
    this.apply({ seconds, at }, this.c.me, at);
    this.send(seconds, at);
  }

  /** Sends the setting in force again (the same `at`: nothing changes where it is known). */
  tell() {
    if (this.changes.length && !this.c.closed) this.send(this.seconds, this.setAt);
  }

  send(seconds, at) {
    this.c.sendControl({ kind: 'timer', seconds, at });
    if (this.c.mode !== 'group') for (const p of this.c.presentPeers()) this.told.add(p.userId);
  }

  /**
   * The room's members changed. The creator's page tells a new peer of a private room the
   * timer (the history it gets holds only what was sent to it); in group rooms, see keyChanged.
   */
  membersChanged() {
    if (!this.c.isCreator || this.c.mode === 'group' || !this.changes.length) return;
    const peer = this.c.presentPeers()[0];
    if (!peer || this.told.has(peer.userId)) return;
    // A timer message still waiting for a peer goes to this one anyway.
    const waiting = this.c.outbox.some((r) => r.content?.kind === 'timer' && r.state !== 'sent');
    if (waiting) this.told.add(peer.userId);
    else this.tell();
  }

  /** Group rooms: a new room key went out; whoever holds only it learns the timer again. */
  keyChanged() {
    if (this.c.isCreator && this.c.mode === 'group') this.tell();
  }

  /**
   * A timer message `t` (readKind's) from `from`, relayed at `timestamp`: applied only from
   * the room's creator. Says so when the timer in force changes.
   */
  apply(t, from, timestamp) {
    if (!from || from !== this.c.creatorId) return;
    if (this.changes.some((x) => x.at === t.at)) return;
    const before = this.seconds;
    // A page that knew no timer yet (a newcomer) learns the one in force; it did not see it change.
    const learnt = !this.changes.length && from !== this.c.me && t.at < timestamp - 60_000;
    this.changes.push({ seconds: t.seconds, at: t.at });
    this.changes.sort((a, b) => a.at - b.at);
    this.changes = this.changes.slice(-KEPT_CHANGES);
    if (this.seconds !== before) {
      const who = from === this.c.me ? 'You' : this.c.labelOf(from);
      this.c.notice(learnt
        ? `Messages here disappear ${timerWords(this.seconds)} after they were sent (set by ${who}, who created the room).`
        : this.seconds
        ? `${who} set messages to disappear after ${timerWords(this.seconds)}. Messages sent from now on disappear from every page ${timerWords(this.seconds)} after they were sent.`
        : `${who} turned disappearing messages off. Messages sent from now on stay.`, 'timer', timestamp);
      this.c.emit('timer', { seconds: this.seconds });
    }
    this.c.emit('persist');
    this.sweep();
  }

  /** How long message `r` lives (seconds, 0 = for ever). */
  ttlOf(r) {
    return r.content?.ttl ?? this.inForceAt(r.bornAt ?? r.timestamp);
  }

  /**
   * When message `r` goes, by this page's clock: its age counts from when this page saw it
   * sent or arrive (live), else (a replayed history) from the server's timestamp. So a
   * page whose clock is off from the server's does not drop what it just got.
   */
  expiresAt(r) {
    const ttl = this.ttlOf(r);
    return ttl > 0 ? (r.bornAt ?? r.timestamp) + ttl * 1000 : Infinity;
  }

  /** Whether `r` (decrypted, shown) is past its time: then it is removed, and true. */
  due(r, now = Date.now()) {
    if (!r.content || r.control) return false;
    if (r.live) r.bornAt ??= now;
    if (this.expiresAt(r) > now) {
      this.schedule();
      return false;
    }
    this.remove(r);
    return true;
  }

  /** Removes what has expired, and waits for the next one. */
  sweep() {
    const now = Date.now();
    for (const r of [...this.c.messages.values()]) {
      if (r.content && !r.control && this.expiresAt(r) <= now) this.remove(r);
    }
    this.schedule();
  }

  schedule() {
    let next = Infinity;
    for (const r of this.c.messages.values()) {
      if (r.content && !r.control) next = Math.min(next, this.expiresAt(r));
    }
    clearTimeout(this.timer);
    this.timer = null;
    if (next === Infinity || this.c.closed) return;
    this.timer = setTimeout(() => this.sweep(), Math.min(MAX_DELAY_MS, Math.max(0, next - Date.now())));
  }

  /** Message `r` is gone from this page and from what it keeps. */
  remove(r) {
    const c = this.c;
    this.gone.add(r.key);
    c.messages.delete(r.key);
    c.pending.delete(r);
    c.outbox = c.outbox.filter((x) => x !== r);
    c.savedReceipts.delete(r.id);
    const n = c.notes;
    n.edits.delete(r.key);
    n.reactions.delete(r.key);
    n.seen.delete(r.key);
    n.receipted.delete(r.key);
    c.seenBatch.delete(r.key);
    // A reply quoting it keeps who wrote it, not what.
    for (const key of n.repliesTo(r.key)) {
      const reply = c.messages.get(key);
      if (reply?.content?.reply) {
        reply.content.reply.text = 'This message disappeared';
        reply.content.reply.gone = true;
        c.emit('message', { record: reply });
      }
    }
    if (r.content?.url) URL.revokeObjectURL(r.content.url);
    r.content = null;
    r.plaintext = null;
    r.expired = true;
    c.emit('expired', { record: r });
    c.emit('persist');
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}
