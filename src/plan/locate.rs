//! Where things are in a plan file: document paths (`sources[1].accounts[3].package`)
//! and their line:column.
//!
//! Owns: [`DocPath`], the path of a node as the rules name it, and
//! [`SourceIndex`], a light tree of the YAML document (node kinds, keys and
//! positions only, no values) built from the YAML parser's events. The rules
//! run on the typed [`Plan`](super::Plan), which has no positions; when one
//! fails, its path is looked up here. The index is built only when there is
//! something to report, so valid plans never pay for it.
//!
//! Does not own: deciding what is wrong (`rules`), or deserializing (`parse`).
//!
//! The tree is built iteratively (an explicit stack, never recursion), so a
//! deeply nested hostile document cannot overflow the stack; the YAML parser's
//! own nesting limits apply.

use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// One step of a [`DocPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A node's place in the document, e.g. `sources[1].accounts[3].package`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocPath(pub Vec<Seg>);

impl DocPath {
    /// The whole document.
    pub fn root() -> Self {
        DocPath(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    /// This path extended by a sequence index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// The path without its last step (the root stays the root).
    pub fn parent(&self) -> Self {
        let mut p = self.clone();
        p.0.pop();
        p
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A position in the file: 1-based line, 1-based column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(m: &serde_saphyr::granit_parser::Marker) -> Pos {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// What a diagnostic should point at: a node's key (`acounts:`) or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Key,
    Value,
}

/// A located node: where it is, and how many characters to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub pos: Pos,
    pub len: usize,
    /// `false` when the path was not in the document and an ancestor (or the
    /// document start) was used instead.
    pub exact: bool,
}

/// The kind of a YAML node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Map,
    Seq,
    Scalar,
    Alias,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    start: Pos,
    end: Pos,
    /// Scalar length in characters (0 for collections).
    len: usize,
    /// A scalar's text; `None` for collections, aliases and null
    /// (`~`, `null`, or nothing).
    value: Option<Box<str>>,
    /// For a mapping value: its key's text (or `?` for a complex key), the
    /// key's position and length.
    key: Option<(String, Pos, usize)>,
    children: Vec<u32>,
}

/// The document's tree of positions. See the module docs.
#[derive(Debug)]
pub struct SourceIndex {
    nodes: Vec<Node>,
    /// Position of the document start (where root-level problems point).
    doc_start: Pos,
    /// The whole document was read (no syntax error cut it short).
    complete: bool,
}

struct Frame {
    node: u32,
    /// In a mapping: the key read and waiting for its value.
    pending_key: Option<(String, Pos, usize)>,
    /// This collection is itself a mapping key (complex key): its nodes are
    /// recorded but it becomes the key `?` of its parent.
    is_key: bool,
}

impl SourceIndex {
    /// Builds the index from `text`. A syntax error stops the build; the part
    /// read so far is kept (enough to locate anything before the error).
    pub fn build(text: &str) -> SourceIndex {
        let mut idx = SourceIndex {
            nodes: Vec::new(),
            doc_start: Pos { line: 1, column: 1 },
            complete: false,
        };
        let mut opts = serde_saphyr::granit_parser::Options::default();
        opts.set_emit_comments(false);
        let mut parser = Parser::new_from_str_with_options(text, opts);
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0usize;
        while let Some(Ok((event, span))) = parser.next_event() {
            match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        break; // only the first document is a plan
                    }
                    idx.doc_start = Pos::from_marker(&span.start);
                }
                Event::Scalar(value, style, ..) => {
                    let len = value.chars().count().max(span_chars(&span));
                    let null = style == ScalarStyle::Plain
                        && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                    let before = idx.nodes.len();
                    idx.add_leaf(&mut stack, Kind::Scalar, &span, len, Some(value.as_ref()));
                    if idx.nodes.len() > before && !null {
                        idx.nodes[before].value = Some(value.as_ref().into());
                    }
                }
                Event::Alias(_) => {
                    idx.add_leaf(&mut stack, Kind::Alias, &span, span_chars(&span), None);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let kind = if matches!(event, Event::MappingStart(..)) {
                        Kind::Map
                    } else {
                        Kind::Seq
                    };
                    let (id, is_key) = idx.open(&mut stack, kind, &span);
                    stack.push(Frame {
                        node: id,
                        pending_key: None,
                        is_key,
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    if let Some(frame) = stack.pop() {
                        idx.nodes[frame.node as usize].end = Pos::from_marker(&span.end);
                        if frame.is_key
                            && let Some(parent) = stack.last_mut()
                        {
                            let start = idx.nodes[frame.node as usize].start;
                            parent.pending_key = Some(("?".to_string(), start, 1));
                        }
                    }
                }
                Event::DocumentEnd | Event::StreamEnd
                    if documents >= 1 || matches!(event, Event::StreamEnd) =>
                {
                    idx.complete = stack.is_empty();
                    break;
                }
                _ => {}
            }
        }
        idx
    }

    /// Adds a scalar or alias: a key if its mapping waits for one, else a value.
    fn add_leaf(
        &mut self,
        stack: &mut [Frame],
        kind: Kind,
        span: &Span,
        len: usize,
        text: Option<&str>,
    ) {
        let start = Pos::from_marker(&span.start);
        if let Some(frame) = stack.last_mut()
            && self.nodes[frame.node as usize].kind == Kind::Map
            && frame.pending_key.is_none()
        {
            frame.pending_key = Some((text.unwrap_or("*").to_string(), start, len));
            return;
        }
        let id = self.push_node(kind, start, Pos::from_marker(&span.end), len);
        self.attach(stack, id);
    }

    /// Adds a collection node; returns its id and whether it is a complex key.
    fn open(&mut self, stack: &mut [Frame], kind: Kind, span: &Span) -> (u32, bool) {
        let start = Pos::from_marker(&span.start);
        let id = self.push_node(kind, start, start, 0);
        if let Some(frame) = stack.last()
            && self.nodes[frame.node as usize].kind == Kind::Map
            && frame.pending_key.is_none()
        {
            return (id, true);
        }
        self.attach(stack, id);
        (id, false)
    }

    fn push_node(&mut self, kind: Kind, start: Pos, end: Pos, len: usize) -> u32 {
        self.nodes.push(Node {
            kind,
            start,
            end,
            len,
            value: None,
            key: None,
            children: Vec::new(),
        });
        (self.nodes.len() - 1) as u32
    }

    fn attach(&mut self, stack: &mut [Frame], id: u32) {
        if let Some(frame) = stack.last_mut() {
            let key = frame.pending_key.take();
            self.nodes[id as usize].key = key;
            self.nodes[frame.node as usize].children.push(id);
        }
    }

    /// The node at `path`, if it is in the document.
    fn find(&self, path: &DocPath) -> (Option<usize>, usize) {
        let Some(mut cur) = (!self.nodes.is_empty()).then_some(0usize) else {
            return (None, 0);
        };
        for (depth, seg) in path.0.iter().enumerate() {
            let node = &self.nodes[cur];
            let next = match (seg, node.kind) {
                (Seg::Key(k), Kind::Map) => node.children.iter().map(|&c| c as usize).find(|&c| {
                    self.nodes[c]
                        .key
                        .as_ref()
                        .is_some_and(|(name, ..)| name == k)
                }),
                (Seg::Index(i), Kind::Seq) => node.children.get(*i).map(|&c| c as usize),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => return (Some(cur), depth),
            }
        }
        (Some(cur), path.0.len())
    }

    /// Where `path` is. Falls back to the nearest ancestor in the document,
    /// then to the document start.
    pub fn locate(&self, path: &DocPath, anchor: Anchor) -> Located {
        let (node, matched) = self.find(path);
        let exact = matched == path.0.len();
        let Some(id) = node else {
            return Located {
                pos: self.doc_start,
                len: 0,
                exact: false,
            };
        };
        let n = &self.nodes[id];
        // For a missing key, point at the mapping that lacks it; for a key
        // anchor, at the key itself.
        if exact
            && anchor == Anchor::Key
            && let Some((_, pos, len)) = &n.key
        {
            return Located {
                pos: *pos,
                len: *len,
                exact,
            };
        }
        if !exact && let Some((_, pos, len)) = &n.key {
            // The value exists but lacks the child: underline its key, which
            // reads better than an arbitrary first child.
            if n.kind != Kind::Scalar {
                return Located {
                    pos: *pos,
                    len: *len,
                    exact,
                };
            }
        }
        Located {
            pos: n.start,
            len: n.len,
            exact,
        }
    }

    /// The path of the innermost node at `pos` (a key position counts as its
    /// node), for errors that come with a position but no path; `true` when
    /// `pos` is on that node's key.
    pub fn path_at(&self, pos: Pos) -> (DocPath, bool) {
        let mut path = DocPath::root();
        let Some(mut cur) = (!self.nodes.is_empty()).then_some(0usize) else {
            return (path, false);
        };
        loop {
            let node = &self.nodes[cur];
            let mut next = None;
            for (i, &c) in node.children.iter().enumerate() {
                let child = &self.nodes[c as usize];
                let on_key = child.key.as_ref().is_some_and(|(_, kp, _)| *kp == pos);
                let inside = child.start <= pos
                    && (pos < child.end
                        || (child.kind == Kind::Scalar && pos <= child.end)
                        || child.end == child.start);
                if on_key || inside {
                    let seg = match (&node.kind, &child.key) {
                        (Kind::Map, Some((k, ..))) => Seg::Key(k.clone()),
                        _ => Seg::Index(i),
                    };
                    next = Some((c as usize, seg, on_key));
                }
            }
            match next {
                Some((c, seg, on_key)) => {
                    path.0.push(seg);
                    if on_key {
                        return (path, true);
                    }
                    cur = c;
                }
                None => return (path, false),
            }
        }
    }

    /// The start of the mapping or sequence at `path` (or the nearest
    /// ancestor present).
    pub fn start_of(&self, path: &DocPath) -> Pos {
        match self.find(path) {
            (Some(id), _) => self.nodes[id].start,
            (None, _) => self.doc_start,
        }
    }

    /// Is the node at `path` a mapping?
    pub fn is_map(&self, path: &DocPath) -> bool {
        match self.find(path) {
            (Some(id), m) if m == path.0.len() => self.nodes[id].kind == Kind::Map,
            _ => false,
        }
    }
}

/// Read access for passes that walk the tree (`structure`, secret masking).
impl SourceIndex {
    /// Was the whole document read? A syntax error leaves a partial tree,
    /// on which "missing key" would be wrong.
    pub(crate) fn complete(&self) -> bool {
        self.complete
    }

    /// The document's root node, if the document has one.
    pub(crate) fn root(&self) -> Option<usize> {
        (!self.nodes.is_empty()).then_some(0)
    }

    pub(crate) fn kind(&self, id: usize) -> Kind {
        self.nodes[id].kind
    }

    /// Children in document order, with their key in a mapping.
    pub(crate) fn children(&self, id: usize) -> impl Iterator<Item = (usize, Option<&str>)> {
        self.nodes[id].children.iter().map(|&c| {
            let c = c as usize;
            (c, self.nodes[c].key.as_ref().map(|(k, ..)| k.as_str()))
        })
    }

    /// A scalar's text (`None` for null and non-scalars).
    pub(crate) fn scalar(&self, id: usize) -> Option<&str> {
        self.nodes[id].value.as_deref()
    }

    /// Where a node starts, and its length in characters.
    pub(crate) fn extent(&self, id: usize) -> (Pos, usize) {
        (self.nodes[id].start, self.nodes[id].len)
    }
}

fn span_chars(span: &Span) -> usize {
    span.end.index().saturating_sub(span.start.index())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
version: 1
sources:
  - name: old1
    accounts:
      - example
      - user: shop
        package: gold
  - {name: old2, accounts: [a, b]}
";

    fn p(segs: &[Seg]) -> DocPath {
        DocPath(segs.to_vec())
    }
    fn k(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    #[test]
    fn paths_display_like_the_rules_write_them() {
        let path = DocPath::root()
            .key("sources")
            .index(1)
            .key("accounts")
            .index(3)
            .key("package");
        assert_eq!(path.to_string(), "sources[1].accounts[3].package");
        assert_eq!(DocPath::root().to_string(), "");
    }

    #[test]
    fn locates_values_and_keys() {
        let idx = SourceIndex::build(DOC);
        let pkg = p(&[
            k("sources"),
            Seg::Index(0),
            k("accounts"),
            Seg::Index(1),
            k("package"),
        ]);
        let v = idx.locate(&pkg, Anchor::Value);
        assert_eq!((v.pos.line, v.pos.column, v.len, v.exact), (7, 18, 4, true));
        let kk = idx.locate(&pkg, Anchor::Key);
        assert_eq!((kk.pos.line, kk.pos.column), (7, 9));
        let b = idx.locate(
            &p(&[k("sources"), Seg::Index(1), k("accounts"), Seg::Index(1)]),
            Anchor::Value,
        );
        assert_eq!((b.pos.line, b.pos.column), (8, 32));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let idx = SourceIndex::build(DOC);
        let l = idx.locate(&p(&[k("sources"), Seg::Index(0), k("host")]), Anchor::Value);
        assert!(!l.exact);
        assert_eq!((l.pos.line, l.pos.column), (3, 5));
        let l = idx.locate(&p(&[k("nothing"), k("deeper")]), Anchor::Value);
        assert_eq!((l.pos.line, l.pos.column), (1, 1));
    }

    #[test]
    fn path_at_finds_the_innermost_node() {
        let idx = SourceIndex::build(DOC);
        let at = |line, column| {
            let (p, on_key) = idx.path_at(Pos { line, column });
            (p.to_string(), on_key)
        };
        assert_eq!(at(7, 18), ("sources[0].accounts[1].package".into(), false));
        assert_eq!(at(7, 9), ("sources[0].accounts[1].package".into(), true));
        assert_eq!(at(8, 29), ("sources[1].accounts[0]".into(), false));
    }

    #[test]
    fn broken_documents_keep_what_was_read() {
        let idx = SourceIndex::build("version: 1\ntarget:\n  url: x\n bad: [\n");
        let l = idx.locate(&p(&[k("target"), k("url")]), Anchor::Value);
        assert_eq!((l.pos.line, l.pos.column), (3, 8));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let text = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let idx = SourceIndex::build(&text);
        let _ = idx.path_at(Pos {
            line: 1,
            column: 50,
        });
    }
}
