// blindrelay web client: telling members apart when their names look the same.
//
// The server relays any readable name (docs/protocol.md "Conventions"), so two people can both be
// "Alice", or one can be "Аlice" with a Cyrillic А. The page cannot know who is who; it
// can say that two names look alike and show what does tell them apart: the safety
// number, which is bound to each person's key. This is a small confusable "skeleton" in
// the spirit of Unicode TS #39, for the look-alikes people meet in practice: case, width
// and styled letters (NFKC), Cyrillic and Greek letters drawn like Latin ones, 0/O,
// 1/l/I, rn/m, vv/w. It is a warning, never a refusal.

/** Capitals (and a few others) drawn like Latin letters; mapped before case folding. */
const CAPITALS = new Map(Object.entries({
  // Cyrillic
  'А': 'A', 'В': 'B', 'С': 'C', 'Е': 'E', 'Н': 'H', 'І': 'I', 'Ј': 'J', 'К': 'K', 'М': 'M',
  'О': 'O', 'Р': 'P', 'Ѕ': 'S', 'Т': 'T', 'Х': 'X', 'У': 'Y', 'Ү': 'Y', 'Ԛ': 'Q', 'Ԝ': 'W',
  'Ӏ': 'l',
  // Greek
  'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N',
  'Ο': 'O', 'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
}));

/** Small letters, digits and signs drawn like Latin small letters; mapped after folding. */
const SMALL = new Map(Object.entries({
  // Cyrillic
  'а': 'a', 'с': 'c', 'е': 'e', 'о': 'o', 'р': 'p', 'х': 'x', 'у': 'y', 'ѕ': 's', 'і': 'i',
  'ј': 'j', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'һ': 'h', 'ӏ': 'l', 'ь': 'b', 'ө': 'o',
  // Greek
  'α': 'a', 'ο': 'o', 'ρ': 'p', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'υ': 'u', 'χ': 'x',
  // Latin and signs
  'ı': 'i', 'ɡ': 'g', '0': 'o', '1': 'l', '|': 'l',
}));

/** What the server drops anyway (an older server may not have). */
const INVISIBLE = /[\p{Cc}\p{Cf}\u034F\u115F\u1160\u3164\uFFA0\uFE00-\uFE0F]/gu;

function fold(name, capitalIAsL) {
  let s = String(name ?? '').normalize('NFKC').replace(INVISIBLE, '');
  s = Array.from(s, (c) => CAPITALS.get(c) ?? c).join('');
  // A capital I and a small l are one stroke in most sans-serif fonts ("AIice").
  if (capitalIAsL) s = s.replaceAll('I', 'l');
  s = Array.from(s.toLowerCase(), (c) => SMALL.get(c) ?? c).join('');
  return s.replaceAll('rn', 'm').replaceAll('vv', 'w').replace(/\s+/gu, ' ').trim();
}

/**
 * The skeletons of a name: two names look alike when they share one. (Two, because "Ian"
 * must match "ian" by case and "lan" by shape.)
 */
export function skeletons(name) {
  return new Set([fold(name, false), fold(name, true)]);
}

/**
 * Who, among `people` ([{id, name}]), has a name that looks like someone else's: the set
 * of their ids. Nameless people are left out (the page calls them all "Someone").
 */
export function lookAlikes(people) {
  const firstBy = new Map();
  const alike = new Set();
  for (const { id, name } of people) {
    if (!name) continue;
    for (const key of skeletons(name)) {
      if (!key) continue;
      const other = firstBy.get(key);
      if (other === undefined) firstBy.set(key, id);
      else if (other !== id) {
        alike.add(other);
        alike.add(id);
      }
    }
  }
  return alike;
}
