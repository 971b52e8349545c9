//! Splits a file into the source text of each object, keeping absolute positions.
//!
//! The kind of a manifest is only known once `apiVersion` and `kind` are read, and they may
//! come after `spec`; serde cannot look ahead without buffering into a value that forgets
//! positions. So the text of each object is cut out and read twice: once for its header,
//! once with the deserialiser of its kind. Each cut keeps the lines and columns of the file
//! (see [`Region`]), so the parser's error positions stay true.

use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, ScanError, StructureStyle};

/// The source text of one node, padded so that positions in it are positions in the file
/// once [`Region::line_offset`] is added to the line.
#[derive(Clone, Debug)]
pub(crate) struct Region {
    /// Text from the start of the node's first line; what precedes the node on that line is
    /// blanked, so columns are unchanged.
    pub(crate) text: String,
    /// Lines of the file before the region's first line.
    pub(crate) line_offset: u64,
    /// 1-based line of the node's start in the file.
    pub(crate) line: u64,
    /// 1-based column of the node's start in the file.
    pub(crate) column: u64,
}

impl Region {
    /// Cuts `source[start..end]` out of `source`.
    pub(crate) fn cut(source: &str, start: usize, end: usize) -> Region {
        let start = start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_offset = source[..line_start].matches('\n').count();
        Region::cut_at(source, start, end, line_start, line_offset)
    }

    /// The cut, once the line of `start` is known: it begins at byte `line_start`, after
    /// `line_offset` lines.
    fn cut_at(
        source: &str,
        start: usize,
        end: usize,
        line_start: usize,
        line_offset: usize,
    ) -> Region {
        let end = end.clamp(start, source.len());
        let prefix = &source[line_start..start];
        let line_offset = line_offset as u64;
        let mut text = String::with_capacity(end - line_start);
        // Blanks keep columns: the parser counts characters, one blank per character.
        text.extend(prefix.chars().map(|c| if c == '\t' { '\t' } else { ' ' }));
        text.push_str(&source[start..end]);
        Region {
            text,
            line_offset,
            line: line_offset + 1,
            column: prefix.chars().count() as u64 + 1,
        }
    }

    /// Maps a 1-based (line, column) inside the region to the file.
    pub(crate) fn position(&self, line: u64, column: u64) -> (u64, u64) {
        (line + self.line_offset, column)
    }
}

/// Cuts regions out of one source with an index of its newlines, built once: counting the
/// lines before each cut from the start of the file made a file of 10 000 documents take
/// 10 s to load (quadratic in its size).
pub(crate) struct Cutter<'s> {
    source: &'s str,
    /// Byte offsets of the newlines of `source`, in order.
    newlines: Vec<usize>,
}

impl<'s> Cutter<'s> {
    pub(crate) fn new(source: &'s str) -> Cutter<'s> {
        Cutter {
            source,
            newlines: source.match_indices('\n').map(|(i, _)| i).collect(),
        }
    }

    /// The same as [`Region::cut`] of the whole source.
    pub(crate) fn cut(&self, start: usize, end: usize) -> Region {
        let start = start.min(self.source.len());
        let before = self.newlines.partition_point(|&i| i < start);
        let line_start = match before.checked_sub(1) {
            Some(last) => self.newlines.get(last).map_or(0, |&i| i + 1),
            None => 0,
        };
        Region::cut_at(self.source, start, end, line_start, before)
    }
}

/// One YAML document of a file.
#[derive(Debug, Default)]
pub(crate) struct YamlDocument {
    /// 1-based index of the document in its file.
    pub(crate) index: usize,
    /// The root node; `None` for an empty document (only comments, or `~`).
    pub(crate) root: Option<Region>,
    /// When the root is a mapping with an `items` sequence (a `kind: List`), its elements.
    pub(crate) items: Vec<Region>,
}

/// The YAML documents of a file, and the syntax error that ended reading, if any (with the
/// 1-based index of the document it is in).
pub(crate) struct YamlSplit {
    pub(crate) documents: Vec<YamlDocument>,
    pub(crate) error: Option<(usize, ScanError)>,
}

struct Frame {
    is_map: bool,
    /// In a mapping: whether the next node is a key.
    expect_key: bool,
    /// In a mapping: the last key read, when a plain string.
    key: Option<String>,
    /// Whether this is the sequence under the root mapping's `items`.
    items: bool,
    /// Whether the collection is written in flow style (`{…}`, `[…]`).
    flow: bool,
    /// Byte offset where the node of this frame starts, when its range is wanted.
    range_start: Option<(usize, Want)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Root,
    Item,
}

fn byte(marker: &Marker) -> usize {
    // Parsers over `&str` always carry byte offsets.
    marker.byte_offset().unwrap_or(0)
}

/// Splits YAML text into documents, each with its root node and `items` elements.
pub(crate) fn split_yaml(source: &str) -> YamlSplit {
    let mut documents: Vec<YamlDocument> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut error = None;
    // The end of the last content read. A block collection's end event is placed at the next
    // token, which may be the next document's `---`, so it cannot mark where the node ends.
    let mut content_end = 0;
    let cutter = Cutter::new(source);
    for event in Parser::new_from_str(source) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(e) => {
                // A document has begun when the error is inside it; otherwise the error
                // comes before the next one.
                let index = documents.len().max(1);
                error = Some((index, e));
                break;
            }
        };
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        match &event {
            Event::DocumentStart(..) => {
                stack.clear();
                let index = documents.len() + 1;
                documents.push(YamlDocument {
                    index,
                    ..YamlDocument::default()
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop();
                if frame.as_ref().is_some_and(|f| f.flow) {
                    content_end = byte(&span.end);
                }
                if let Some(frame) = frame
                    && let Some((start, want)) = frame.range_start
                    && let Some(doc) = documents.last_mut()
                {
                    let region = cutter.cut(start, content_end.max(start));
                    match want {
                        Want::Root => doc.root = Some(region),
                        Want::Item => doc.items.push(region),
                    }
                }
            }
            _ => {}
        }
        if !is_node {
            continue;
        }
        content_end = byte(&span.end);
        // Which node is this: the root, an element of the root's `items`, or anything else?
        let want = match stack.as_slice() {
            [] => Some(Want::Root),
            [_, seq] if seq.items => Some(Want::Item),
            _ => None,
        };
        let is_items_value = matches!(stack.as_slice(), [root] if root.is_map
            && !root.expect_key
            && root.key.as_deref() == Some("items"));
        if let Some(top) = stack.last_mut()
            && top.is_map
        {
            if top.expect_key {
                top.key = match &event {
                    Event::Scalar(value, ..) => Some(value.to_string()),
                    _ => None,
                };
            }
            top.expect_key = !top.expect_key;
        }
        match &event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                stack.push(Frame {
                    is_map: matches!(event, Event::MappingStart(..)),
                    expect_key: true,
                    key: None,
                    items: is_items_value && matches!(event, Event::SequenceStart(..)),
                    flow: matches!(
                        event,
                        Event::SequenceStart(StructureStyle::Flow, ..)
                            | Event::MappingStart(StructureStyle::Flow, ..)
                    ),
                    range_start: want.map(|w| (byte(&span.start), w)),
                });
            }
            Event::Scalar(value, style, _, tag) => match want {
                Some(Want::Root) => {
                    let null = tag.is_none()
                        && matches!(style, ScalarStyle::Plain)
                        && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                    if !null && let Some(doc) = documents.last_mut() {
                        doc.root = Some(cutter.cut(byte(&span.start), byte(&span.end)));
                    }
                }
                Some(Want::Item) => {
                    if let Some(doc) = documents.last_mut() {
                        doc.items
                            .push(cutter.cut(byte(&span.start), byte(&span.end)));
                    }
                }
                None => {}
            },
            _ => {}
        }
    }
    YamlSplit { documents, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(source: &str) -> Vec<(usize, Option<String>, Vec<String>)> {
        let split = split_yaml(source);
        assert!(split.error.is_none());
        split
            .documents
            .into_iter()
            .map(|d| {
                (
                    d.index,
                    d.root.map(|r| r.text),
                    d.items.into_iter().map(|r| r.text).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn cut_keeps_columns_and_lines() {
        let source = "a: 1\n- b: 2\n  c: 3\n";
        let start = source.find("b:").unwrap();
        let region = Region::cut(source, start, source.len());
        assert_eq!(region.text, "  b: 2\n  c: 3\n");
        assert_eq!((region.line, region.column, region.line_offset), (2, 3, 1));
        assert_eq!(region.position(2, 3), (3, 3));
    }

    /// The indexed cut against the plain one, at every start and a few ends, over text with
    /// empty lines, tabs and several-byte characters.
    #[test]
    fn indexed_cuts_are_the_plain_cuts() {
        let source = "a: 1\n\n\tb: é2\n- c: ✓\n  d: 3\n\nlast";
        let cutter = Cutter::new(source);
        for start in (0..=source.len()).filter(|&i| source.is_char_boundary(i)) {
            for end in [start, source.len()] {
                let (plain, indexed) = (Region::cut(source, start, end), cutter.cut(start, end));
                assert_eq!(
                    (plain.text, plain.line, plain.column, plain.line_offset),
                    (
                        indexed.text,
                        indexed.line,
                        indexed.column,
                        indexed.line_offset
                    ),
                    "cut at {start}..{end}"
                );
            }
        }
    }

    #[test]
    fn documents_end_before_the_next_marker() {
        let docs =
            texts("# lead\na: 1\n---\n---\n# only a comment\n---\nb: [1, 2]\nc: {d: 3}\n...\n");
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].1.as_deref(), Some("a: 1"));
        assert_eq!(docs[1].1, None);
        assert_eq!(docs[2].1, None);
        assert_eq!(docs[3].0, 4);
        assert_eq!(docs[3].1.as_deref(), Some("b: [1, 2]\nc: {d: 3}"));
    }

    #[test]
    fn list_items_block_and_flow() {
        let source = "kind: List\nitems:\n- a: 1\n  b: 2\n- {c: 3}\n- [x]\nother:\n  items: [9]\n";
        let docs = texts(source);
        assert_eq!(docs[0].2, vec!["  a: 1\n  b: 2", "  {c: 3}", "  [x]"]);
    }

    #[test]
    fn nested_items_are_not_list_items() {
        let docs = texts("spec:\n  items:\n  - a\n");
        assert!(docs[0].2.is_empty());
    }

    #[test]
    fn syntax_error_names_its_document() {
        let split = split_yaml("a: 1\n---\nb: [\n");
        let (document, error) = split.error.unwrap();
        assert_eq!(document, 2);
        assert_eq!(error.marker().line(), 3);
    }
}
