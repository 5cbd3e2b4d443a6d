// blindrelay web client: the kinds of encrypted content beyond a text or a file, and what
// they do to the messages they refer to. No DOM.
//
// Every one of them is an ordinary `send-message` of type "text": the server stores and
// relays it like any text, and only the decrypted header says what it is
// (static/README.md, "Kinds of content"):
//   text      {kind: "text", text, reply?: {id, from, name, text}}   a message, maybe a reply
//   reaction  {kind: "reaction", id, from, emoji, on}                toggles an emoji on a message
//   edit      {kind: "edit", id, text}                               the sender's new text of its message
//   delete    {kind: "delete", id}                                   the sender deletes its message for everyone
//   receipt   {kind: "receipt", seen: [{id, from}, ...]}             the reader's page showed these messages
//   timer     {kind: "timer", seconds, at}                           the creator's disappearing-messages timer
//                                                                    (0 = off), set at `at` (disappear.js)
// A text carries `ttl`: the timer (seconds, 0 = off) in force on its sender's page when it
// was sent, which is what decides when it disappears (disappear.js).
// Edits and deletions name only a message id: the message they change is the one of that id
// *from the same sender*, so nobody can edit or delete another person's message. A kind this
// page does not know is ignored quietly.

/** The reactions offered (a small fixed set), with the words a screen reader says. */
export const REACTIONS = [
  { emoji: '👍', name: 'thumbs up' },
  { emoji: '❤️', name: 'heart' },
  { emoji: '😂', name: 'laughing' },
  { emoji: '😮', name: 'surprised' },
  { emoji: '😢', name: 'sad' },
  { emoji: '🙏', name: 'thank you' },
];
const EMOJI = new Set(REACTIONS.map((r) => r.emoji));
export const reactionName = (emoji) => REACTIONS.find((r) => r.emoji === emoji)?.name ?? emoji;

/** Kinds that change other messages and are not shown themselves. */
export const CONTROL_KINDS = new Set(['reaction', 'edit', 'delete', 'receipt', 'timer']);
/** The disappearing-messages timers offered, in seconds (0 = off). */
export const TIMER_CHOICES = [0, 5 * 60, 3600, 8 * 3600, 24 * 3600, 7 * 24 * 3600];
const validTimer = (n) => TIMER_CHOICES.includes(n);
/** A quote's text: the first line of the original, this long at most. */
const QUOTE_CHARS = 120;
const MAX_SEEN = 64;
const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

const validId = (s) => typeof s === 'string' && ID_RE.test(s);

/** The first line of a text, cut to a quote's length. */
export function firstLine(text) {
  const line = String(text ?? '').split('\n').find((l) => l.trim()) ?? '';
  const chars = [...line.trim()];
  return chars.length > QUOTE_CHARS ? `${chars.slice(0, QUOTE_CHARS - 1).join('')}…` : chars.join('');
}

/**
 * What a decrypted text-type header holds, checked: `{kind, ...}` for a kind this page
 * knows, or `{kind: 'unknown'}` (ignored).
 */
export function readKind(meta) {
  const kind = meta?.kind ?? 'text';
  if (kind === 'text') {
    const out = { kind, text: String(meta.text ?? '') };
    const r = meta.reply;
    if (r && validId(r.id) && validId(r.from)) {
      out.reply = { id: r.id, from: r.from, name: String(r.name ?? '').slice(0, 256), text: firstLine(r.text) };
    }
    if (validTimer(meta.ttl)) out.ttl = meta.ttl;
    return out;
  }
  if (kind === 'reaction' && validId(meta.id) && validId(meta.from) && EMOJI.has(meta.emoji)) {
    return { kind, id: meta.id, from: meta.from, emoji: meta.emoji, on: meta.on !== false };
  }
  if (kind === 'edit' && validId(meta.id) && typeof meta.text === 'string') return { kind, id: meta.id, text: meta.text };
  if (kind === 'delete' && validId(meta.id)) return { kind, id: meta.id };
  if (kind === 'receipt' && Array.isArray(meta.seen)) {
    const seen = meta.seen.filter((s) => validId(s?.id) && validId(s?.from)).slice(0, MAX_SEEN)
      .map((s) => ({ id: s.id, from: s.from }));
    return { kind, seen };
  }
  if (kind === 'timer' && validTimer(meta.seconds) && Number.isSafeInteger(meta.at) && meta.at > 0) {
    return { kind, seconds: meta.seconds, at: meta.at };
  }
  return { kind: 'unknown' };
}

/**
 * What the control messages of a room did to its messages: edits, deletions, reactions,
 * receipts and which replies quote what. They may arrive before the message they refer to
 * (a history decrypts out of order): they are kept and apply when it comes.
 */
export class Annotations {
  constructor(me) {
    this.me = me;
    /** "<from>/<id>" -> {text, at} (the newest edit). */
    this.edits = new Map();
    /** "<from>/<id>" -> when it was deleted. */
    this.deleted = new Map();
    /** "<from>/<id>" -> Map emoji -> Map reactor -> {on, at}. */
    this.reactions = new Map();
    /** "<from>/<id>" -> Set of readers (receipts). */
    this.seen = new Map();
    /** "<from>/<id>" of others' messages this member has sent a receipt for. */
    this.receipted = new Set();
    /** "<from>/<id>" -> Set of keys of the replies quoting it. */
    this.replies = new Map();
  }

  /**
   * Applies a control message `c` (readKind's) sent by `from` at `at`; returns the keys of
   * the messages it changes.
   */
  apply(c, from, at) {
    if (c.kind === 'edit' || c.kind === 'delete') {
      const key = `${from}/${c.id}`;
      if (c.kind === 'delete') {
        if (!this.deleted.has(key)) this.deleted.set(key, at);
      } else if (!(this.edits.get(key)?.at > at)) {
        this.edits.set(key, { text: c.text, at });
      }
      return [key];
    }
    if (c.kind === 'reaction') {
      const key = `${c.from}/${c.id}`;
      const byEmoji = this.reactions.get(key) ?? new Map();
      this.reactions.set(key, byEmoji);
      const who = byEmoji.get(c.emoji) ?? new Map();
      byEmoji.set(c.emoji, who);
      if (!(who.get(from)?.at > at)) who.set(from, { on: c.on, at });
      return [key];
    }
    if (c.kind === 'receipt') {
      const keys = [];
      for (const { id, from: author } of c.seen) {
        const key = `${author}/${id}`;
        if (from === this.me) {
          this.receipted.add(key);
          continue;
        }
        const readers = this.seen.get(key) ?? new Set();
        this.seen.set(key, readers);
        if (!readers.has(from)) {
          readers.add(from);
          keys.push(key);
        }
      }
      return keys;
    }
    return [];
  }

  /** A reply arrived: it is drawn again when what it quotes changes. */
  noteReply(replyKey, reply) {
    const key = `${reply.from}/${reply.id}`;
    const set = this.replies.get(key) ?? new Set();
    set.add(replyKey);
    this.replies.set(key, set);
  }

  repliesTo(key) {
    return [...(this.replies.get(key) ?? [])];
  }

  isDeleted(key) {
    return this.deleted.has(key);
  }

  /** The newest text of a message (its edit), or undefined when never edited. */
  editOf(key) {
    return this.edits.get(key)?.text;
  }

  /** [{emoji, name, who: [userId...], mine}] in the offered order, the empty ones left out. */
  reactionsOf(key) {
    const byEmoji = this.reactions.get(key);
    if (!byEmoji) return [];
    const out = [];
    for (const { emoji, name } of REACTIONS) {
      const who = [...(byEmoji.get(emoji) ?? new Map())].filter(([, v]) => v.on).map(([u]) => u);
      if (who.length) out.push({ emoji, name, who, mine: who.includes(this.me) });
    }
    return out;
  }

  /** Whether this member's own reaction `emoji` is on message `key`. */
  reacted(key, emoji) {
    return Boolean(this.reactions.get(key)?.get(emoji)?.get(this.me)?.on);
  }

  seenBy(key) {
    return this.seen.get(key) ?? new Set();
  }
}
