//! Display names: the one rule for every name that enters the server (`join-session`,
//! a name read back from Redis), so that what members are shown is text, never control.
//!
//! A name is relayed to every member's screen (and the End2End Chat app also shows it in
//! OS notifications), so characters that steer a terminal or a layout instead of being
//! read are removed before it is stored:
//!
//! 1. Control characters (Unicode `Cc`: NUL, BEL, ESC of ANSI sequences...) are dropped,
//!    except the whitespace ones, which become spaces.
//! 2. Default-ignorable and format characters (`Default_Ignorable_Code_Point` ∪ `Cf`:
//!    bidi overrides, isolates and marks such as the U+202E of "invoice<U+202E>gpj.exe", zero-width
//!    spaces, U+FEFF, soft hyphens, fillers, tags, variation selectors) are dropped. Three
//!    of them are kept where an emoji needs them, and only there: a zero-width joiner
//!    between two pictographs (👨‍👩‍👧‍👦), a presentation selector right after a pictograph
//!    or a keycap base (❤️, 1️⃣), and tag characters after a black flag (🏴 subdivision
//!    flags).
//! 3. Every run of whitespace becomes one space, and the ends are trimmed.
//! 4. It is cut at a grapheme-cluster boundary (UAX #29), at [`MAX_DISPLAY_NAME_GRAPHEMES`]
//!    clusters and at most [`MAX_DISPLAY_NAME_BYTES`] bytes, so an emoji sequence or a
//!    letter and its accents is never split.
//! 5. A name that had characters but none that survive becomes [`NEUTRAL_NAME`]; an
//!    empty one stays empty (no name: clients show their own fallback, the End2End Chat
//!    app the userId, the built-in client "Someone").
//!
//! The rule is idempotent, so a name read back from storage is unchanged by it. Names are
//! never refused: the End2End Chat app treats a refused join as fatal.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// Longest display name kept, in grapheme clusters (what a reader counts as characters).
pub const MAX_DISPLAY_NAME_GRAPHEMES: usize = 64;
/// Longest display name kept, in UTF-8 bytes: what 64 characters could take before
/// (64 × 4), so a name costs no more memory, Redis or bandwidth than it did.
pub const MAX_DISPLAY_NAME_BYTES: usize = 256;
/// What a name made only of dropped characters becomes (the built-in client's word for a
/// member without a name).
pub const NEUTRAL_NAME: &str = "Someone";
/// Only this much of a name's text is read: a name is a few words, and the cost of
/// cleaning one is bounded whatever a client sends.
const MAX_INPUT_BYTES: usize = 64 * 1024;

const ZWJ: char = '\u{200D}';
const BLACK_FLAG: char = '\u{1F3F4}';
const KEYCAP: char = '\u{20E3}';

/// `Default_Ignorable_Code_Point` ∪ `General_Category=Cf` (Unicode 16), as sorted,
/// disjoint ranges. Both properties are stable: new assignments land inside these blocks.
const IGNORABLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{115F}', '\u{1160}'),   // Hangul fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors, vowel separator
    ('\u{200B}', '\u{200F}'),   // ZWSP, ZWNJ, ZWJ, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{206F}'),   // word joiner, invisible operators, bidi isolates, deprecated
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (BOM)
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFFB}'),   // unassigned specials, interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0000}', '\u{E0FFF}'), // tags, variation selectors supplement
];

fn is_ignorable(c: char) -> bool {
    IGNORABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The ignorable characters an emoji sequence may need; judged in [`emoji_context`].
fn is_emoji_joiner(c: char) -> bool {
    matches!(c, ZWJ | '\u{FE0E}' | '\u{FE0F}' | '\u{E0020}'..='\u{E007F}')
}

/// Whether `c` is `Extended_Pictographic`. Asked of unicode-segmentation rather than of a
/// second copy of the table: by UAX #29 rule GB11 (`ExtPict Extend* ZWJ × ExtPict`, the
/// only rule that joins a pictograph after a ZWJ), `c ZWJ 😀` is one grapheme cluster
/// exactly when `c` is a pictograph.
fn is_pictographic(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    let mut probe = [0u8; 12];
    let n = c.encode_utf8(&mut probe).len();
    let tail = "\u{200D}\u{1F600}".as_bytes();
    probe[n..n + tail.len()].copy_from_slice(tail);
    std::str::from_utf8(&probe[..n + tail.len()]).is_ok_and(|s| s.graphemes(true).nth(1).is_none())
}

/// Steps 1-2 of the rule for single characters: whitespace becomes a space, controls and
/// ignorables are dropped, emoji joiners are kept for [`emoji_context`] to judge.
fn first_pass(c: char) -> Option<char> {
    if c.is_whitespace() {
        Some(' ')
    } else if c.is_control() || (is_ignorable(c) && !is_emoji_joiner(c)) {
        None
    } else {
        Some(c)
    }
}

/// Step 2 for the emoji joiners, within one grapheme cluster: pushes the cluster to `out`
/// without the joiners that are not part of an emoji sequence. A ZWJ followed by a
/// pictograph in the same cluster is inside one: by GB11 it also follows a pictograph.
fn emoji_context(cluster: &str, out: &mut String) {
    let mut chars = cluster.chars().peekable();
    let Some(base) = chars.peek().copied() else {
        return;
    };
    let keycap = matches!(base, '0'..='9' | '#' | '*') && cluster.contains(KEYCAP);
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        let keep = match c {
            ZWJ => chars.peek().copied().is_some_and(is_pictographic),
            '\u{FE0E}' | '\u{FE0F}' => {
                prev.is_some_and(|p| is_pictographic(p) || (keycap && p == base))
            }
            '\u{E0020}'..='\u{E007F}' => base == BLACK_FLAG,
            _ => true,
        };
        if keep {
            out.push(c);
            prev = Some(c);
        }
    }
}

/// Steps 1-2 of the rule over the first [`MAX_INPUT_BYTES`] of `raw`: what is left is
/// text, with spaces for whitespace (not yet folded).
fn visible_text(raw: &str) -> String {
    let mut end = raw.len().min(MAX_INPUT_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let filtered: String = raw[..end].chars().filter_map(first_pass).collect();
    let mut text = String::with_capacity(filtered.len());
    for cluster in filtered.graphemes(true) {
        emoji_context(cluster, &mut text);
    }
    text
}

/// A file name as relayed in `download-notification` (the End2End Chat app shows it to
/// the sender): steps 1-3 of the rule, so "invoice<U+202E>gpj.exe" cannot pose as a
/// picture. Not cut (the caller bounds its size) and never replaced: an empty result
/// stays empty.
pub fn clean_file_name(raw: &str) -> String {
    let text = visible_text(raw);
    text.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The display-name rule (see the module doc): what is stored and shown for `raw`.
pub fn clean_display_name(raw: &str) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let text = visible_text(raw);
    let mut name = String::with_capacity(text.len().min(MAX_DISPLAY_NAME_BYTES));
    let mut words = text.split(' ').filter(|w| !w.is_empty()).peekable();
    let mut clusters = 0;
    'words: while let Some(word) = words.next() {
        for cluster in word.graphemes(true) {
            if clusters == MAX_DISPLAY_NAME_GRAPHEMES
                || name.len() + cluster.len() > MAX_DISPLAY_NAME_BYTES
            {
                break 'words;
            }
            name.push_str(cluster);
            clusters += 1;
        }
        if words.peek().is_some() {
            if clusters == MAX_DISPLAY_NAME_GRAPHEMES || name.len() + 1 > MAX_DISPLAY_NAME_BYTES {
                break;
            }
            name.push(' ');
            clusters += 1;
        }
    }
    let kept = name.trim_end_matches(' ').len();
    name.truncate(kept);
    if name.is_empty() {
        return NEUTRAL_NAME.to_owned();
    }
    name
}

/// A display name that follows [`clean_display_name`]; empty when none was given.
#[derive(Clone, PartialEq, Eq, Serialize, Default)]
#[serde(transparent)]
pub struct DisplayName(Arc<str>);

impl DisplayName {
    pub fn new(s: &str) -> Self {
        DisplayName(clean_display_name(s).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'de> Deserialize<'de> for DisplayName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::new(&s))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_file_name_keeps_its_text_and_loses_its_controls() {
        assert_eq!(clean_file_name("report.pdf"), "report.pdf");
        assert_eq!(
            clean_file_name("image-1700000000000.png"),
            "image-1700000000000.png"
        );
        assert_eq!(clean_file_name("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        assert_eq!(
            clean_file_name("a\u{1B}[31mred\u{7}\u{0}.txt"),
            "a[31mred.txt"
        );
        assert_eq!(
            clean_file_name("two\n\nlines  here.txt "),
            "two lines here.txt"
        );
        assert_eq!(clean_file_name("\u{2067}\u{200B}"), "");
        let long = "x".repeat(300);
        assert_eq!(
            clean_file_name(&long),
            long,
            "not cut: the caller bounds it"
        );
        assert_eq!(
            clean_file_name("👨\u{200D}👩\u{200D}👧.png"),
            "👨\u{200D}👩\u{200D}👧.png"
        );
    }

    use super::*;

    fn clean(s: &str) -> String {
        clean_display_name(s)
    }

    const FAMILY: &str = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";

    #[test]
    fn ordinary_names_are_kept_as_typed() {
        for name in [
            "Alice",
            "Zoë Ångström",
            "José Núñez",
            "Аlice",
            "李小龙",
            "محمد",
            "שרה",
            "नमस्ते",
            "Ana 🎉",
            "a\u{0301}",
            "O'Brien-Smith (work)",
        ] {
            assert_eq!(clean(name), name, "{name:?}");
        }
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(clean("Al\u{0}ice"), "Alice");
        assert_eq!(clean("Bob\u{7}\u{7}"), "Bob");
        assert_eq!(clean("\u{1b}[31mRed\u{1b}[0m"), "[31mRed[0m");
        assert_eq!(clean("a\u{7f}b\u{80}c\u{9f}d"), "abcd");
        assert_eq!(clean("\u{8}\u{8}\u{8}Eve"), "Eve");
    }

    #[test]
    fn whitespace_and_newlines_become_one_space_and_are_trimmed() {
        assert_eq!(clean("  Ana \n\n Lee\t "), "Ana Lee");
        assert_eq!(clean("Ana\r\nLee"), "Ana Lee");
        assert_eq!(clean("Ana\u{2028}Lee\u{2029}"), "Ana Lee");
        assert_eq!(clean("Ana\u{85}\u{a0}\u{3000}Lee"), "Ana Lee");
        assert_eq!(clean("Ana\u{b}\u{c}Lee"), "Ana Lee");
    }

    #[test]
    fn bidi_overrides_isolates_and_marks_are_dropped() {
        assert_eq!(clean("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        assert_eq!(clean("\u{2067}evil\u{2069}"), "evil");
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(clean(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
        }
        for c in ['\u{200E}', '\u{200F}', '\u{061C}'] {
            assert_eq!(clean(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn stray_zero_width_characters_are_dropped() {
        for c in [
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{200D}',
            '\u{200C}',
            '\u{FE0F}',
            '\u{FE0E}',
            '\u{FE00}',
            '\u{E0101}',
            '\u{00AD}',
            '\u{034F}',
            '\u{3164}',
            '\u{115F}',
            '\u{180E}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{FFF9}',
        ] {
            assert_eq!(
                clean(&format!("A{c}l{c}i{c}c{c}e{c}")),
                "Alice",
                "U+{:04X}",
                c as u32
            );
            assert_eq!(clean(&format!("{c}Bob")), "Bob", "U+{:04X}", c as u32);
        }
        // A joiner next to, but not between, pictographs is stray too.
        assert_eq!(clean("\u{1F468}\u{200D}"), "\u{1F468}");
        assert_eq!(clean("\u{200D}\u{1F468}"), "\u{1F468}");
        assert_eq!(clean("\u{1F468}\u{200D}a"), "\u{1F468}a");
        assert_eq!(clean("a\u{200D}\u{1F468}"), "a\u{1F468}");
        assert_eq!(
            clean("\u{1F468}\u{200D}\u{200D}\u{1F469}"),
            "\u{1F468}\u{1F469}"
        );
        assert_eq!(clean("\u{1F600}\u{FE0F}\u{FE0F}"), "\u{1F600}\u{FE0F}");
    }

    #[test]
    fn emoji_sequences_keep_their_joiners_and_selectors() {
        for emoji in [
            FAMILY,
            "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}", // rainbow flag
            "\u{2764}\u{FE0F}",                   // red heart
            "\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}", // woman technologist, skin tone
            "1\u{FE0F}\u{20E3}",                  // keycap one
            "\u{1F1EB}\u{1F1F7}",                 // flag of France
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland
            "\u{1F441}\u{FE0F}\u{200D}\u{1F5E8}\u{FE0F}", // eye in speech bubble
        ] {
            assert_eq!(clean(emoji), emoji);
            let name = format!("Ana {emoji} Lee");
            assert_eq!(clean(&name), name);
        }
    }

    #[test]
    fn names_are_cut_at_a_grapheme_boundary() {
        let at_limit = "é".repeat(64);
        assert_eq!(clean(&at_limit), at_limit);
        assert_eq!(clean(&"é".repeat(65)), at_limit);
        // Decomposed: "e" and a combining accent are one character to a reader.
        let decomposed = "e\u{301}".repeat(70);
        assert_eq!(clean(&decomposed), "e\u{301}".repeat(64));
        // Families are 25 bytes: the byte bound comes first, after whole families.
        let families = clean(&FAMILY.repeat(30));
        assert_eq!(
            families,
            FAMILY.repeat(MAX_DISPLAY_NAME_BYTES / FAMILY.len())
        );
        // One letter, then a family cut off by the 64th grapheme: never half a family.
        let name = format!("{}{FAMILY}", "a".repeat(63));
        assert_eq!(clean(&name), name);
        let name = format!("{}{FAMILY}", "a".repeat(64));
        assert_eq!(clean(&name), "a".repeat(64));
        // A cut right after a space leaves no trailing space.
        let name = format!("{} b", "a".repeat(63));
        assert_eq!(clean(&name), "a".repeat(63));
        // Whatever the input, the bounds hold.
        for s in [
            &"\u{1F600}".repeat(100),
            &"a\u{301}\u{302}\u{303}".repeat(100),
        ] {
            let c = clean(s);
            assert!(c.len() <= MAX_DISPLAY_NAME_BYTES && c.graphemes(true).count() <= 64);
        }
    }

    #[test]
    fn a_name_of_nothing_readable_gets_the_neutral_name() {
        for s in [
            " ",
            "\n\t",
            "\u{202E}",
            "\u{200B}\u{200D}\u{FEFF}",
            "\u{0}\u{7}",
            "\u{1b}",
        ] {
            assert_eq!(clean(s), NEUTRAL_NAME, "{s:?}");
        }
        // No name at all stays no name (clients have their own fallback).
        assert_eq!(clean(""), "");
        assert_eq!(DisplayName::default().as_str(), "");
    }

    #[test]
    fn only_the_first_64_kib_of_a_name_is_read() {
        let mut long = "\u{200B}".repeat(MAX_INPUT_BYTES / 3 + 1);
        long.push_str("Bob");
        assert_eq!(clean(&long), NEUTRAL_NAME);
        // A cut inside a character moves back to its start.
        let odd = format!("a{}", "é".repeat(MAX_INPUT_BYTES));
        assert_eq!(clean(&odd).chars().count(), 64);
    }

    #[test]
    fn pictographs_are_recognised_through_the_grapheme_rules() {
        for c in [
            '\u{1F468}',
            '\u{1F600}',
            '\u{2764}',
            '\u{00A9}',
            '\u{1F3F4}',
            '\u{1F3F3}',
        ] {
            assert!(is_pictographic(c), "U+{:04X}", c as u32);
        }
        for c in [
            'a',
            '1',
            '#',
            'é',
            'Ж',
            '\u{1F1EB}',
            '\u{1F3FD}',
            '\u{0301}',
            '\u{200D}',
        ] {
            assert!(!is_pictographic(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_rule_is_idempotent_and_deserializing_applies_it() {
        let samples = [
            format!("  {FAMILY}\u{202E} x\u{200D}\u{0} \n y\u{FE0F}"),
            "1\u{FE0F}\u{20E3}\u{200D}\u{1F600}".to_owned(),
            "\u{1F3F4}\u{E0067}\u{200D}\u{1F3F4}".to_owned(),
            "a".repeat(300),
        ];
        for s in samples {
            let once = clean(&s);
            assert_eq!(clean(&once), once, "{s:?}");
            let json = serde_json::to_string(&s).unwrap();
            let name: DisplayName = serde_json::from_str(&json).unwrap();
            assert_eq!(name.as_str(), once);
        }
    }

    proptest::proptest! {
        /// Names mixing the characters the rule is about: stable, bounded, text only.
        #[test]
        fn any_mix_is_stable_bounded_and_text_only(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "Ж", "é", "e\u{301}", " ", "\n", "\t", "\u{0}", "\u{1b}[0m", "\u{202E}",
                "\u{2067}", "\u{200B}", "\u{200C}", "\u{200D}", "\u{FE0F}", "\u{FEFF}",
                "\u{1F468}", "\u{1F3F4}", "\u{E0067}", "\u{E007F}", "1", "\u{20E3}",
                "\u{1F3FD}", "\u{1F1EB}", FAMILY,
            ]), 0..120)
        ) {
            let raw = parts.concat();
            let name = clean(&raw);
            proptest::prop_assert_eq!(clean(&name), name.clone());
            proptest::prop_assert!(name.len() <= MAX_DISPLAY_NAME_BYTES);
            proptest::prop_assert!(name.graphemes(true).count() <= MAX_DISPLAY_NAME_GRAPHEMES);
            proptest::prop_assert!(!name.starts_with(' ') && !name.ends_with(' '));
            proptest::prop_assert!(!name.contains("  "));
            proptest::prop_assert_eq!(name.is_empty(), raw.is_empty());
            for c in name.chars() {
                proptest::prop_assert!(!c.is_control() && (c == ' ' || !c.is_whitespace()));
                proptest::prop_assert!(!is_ignorable(c) || is_emoji_joiner(c));
            }
        }
    }
}
